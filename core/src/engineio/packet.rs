//! One Engine.IO packet: its type, its handshake (`open`) data, and its codec
//! as the WebSocket transport carries it (one packet per WebSocket message)
//! and as it appears inside a polling payload; and [`DecodeError`], the
//! errors of every Engine.IO decoder.
//!
//! Wire forms (both revisions unless noted):
//!
//! | packet | text form | WebSocket binary message |
//! | --- | --- | --- |
//! | open | `0{"sid":...}` | |
//! | close | `1` | |
//! | ping / pong | `2`, `2probe` / `3`, `3probe` | |
//! | text message | `4hello` | |
//! | binary message | v4 `b<base64>`, v3 `b4<base64>` | v4: the bytes as they are; v3: `0x04` then the bytes |
//! | upgrade | `5` | |
//! | noop | `6` | |

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use bytes::Bytes;

use super::ProtocolVersion;
use crate::ws::{Message as WsMessage, Text};

/// The payload of the ping a client sends to test a new WebSocket transport
/// during an upgrade (`2probe`), echoed in the pong (`3probe`).
pub const PROBE: &str = "probe";

/// Standard base64 alphabet, padded on output; padding optional on input.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The type of a packet, sent as its first character (`'0'`-`'6'`), or as
/// the first byte (`0`-`6`) of a v3 binary packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PacketType {
    /// `0`: the server's handshake, with [`OpenPacket`] data.
    Open,
    /// `1`: the transport (and with it the session) is closing.
    Close,
    /// `2`: heartbeat request (v4: sent by the server; v3: by the client),
    /// or the `probe` of an upgrade.
    Ping,
    /// `3`: heartbeat answer, or the answer to a `probe`.
    Pong,
    /// `4`: application data.
    Message,
    /// `5`: the client completes an upgrade to the new transport.
    Upgrade,
    /// `6`: does nothing; ends a pending poll during an upgrade.
    Noop,
}

impl PacketType {
    /// The type with number `n` (0-6).
    ///
    /// ```
    /// use switchboard_core::engineio::PacketType;
    /// assert_eq!(PacketType::from_u8(4), Some(PacketType::Message));
    /// assert_eq!(PacketType::from_u8(7), None);
    /// ```
    pub const fn from_u8(n: u8) -> Option<Self> {
        Some(match n {
            0 => PacketType::Open,
            1 => PacketType::Close,
            2 => PacketType::Ping,
            3 => PacketType::Pong,
            4 => PacketType::Message,
            5 => PacketType::Upgrade,
            6 => PacketType::Noop,
            _ => return None,
        })
    }

    /// The type whose digit is `c` (`'0'`-`'6'`).
    pub const fn from_char(c: char) -> Option<Self> {
        if c.is_ascii_digit() {
            PacketType::from_u8(c as u8 - b'0')
        } else {
            None
        }
    }

    /// The type's number (0-6).
    pub const fn as_u8(self) -> u8 {
        self as u8
    }

    /// The type's digit (`'0'`-`'6'`).
    pub const fn as_char(self) -> char {
        (b'0' + self as u8) as char
    }
}

/// The data of a `message` packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageData {
    /// UTF-8 text (may be empty).
    Text(Text),
    /// Bytes (may be empty).
    Binary(Bytes),
}

impl From<&'static str> for MessageData {
    fn from(text: &'static str) -> Self {
        MessageData::Text(text.into())
    }
}

impl From<String> for MessageData {
    fn from(text: String) -> Self {
        MessageData::Text(text.into())
    }
}

impl From<Text> for MessageData {
    fn from(text: Text) -> Self {
        MessageData::Text(text)
    }
}

impl From<Bytes> for MessageData {
    fn from(bytes: Bytes) -> Self {
        MessageData::Binary(bytes)
    }
}

impl From<Vec<u8>> for MessageData {
    fn from(bytes: Vec<u8>) -> Self {
        MessageData::Binary(bytes.into())
    }
}

impl From<&[u8]> for MessageData {
    fn from(bytes: &[u8]) -> Self {
        MessageData::Binary(Bytes::copy_from_slice(bytes))
    }
}

/// The handshake data of an `open` packet, a JSON object on the wire.
///
/// ```
/// use switchboard_core::engineio::{OpenPacket, Packet, ProtocolVersion};
/// let open = OpenPacket {
///     sid: "lv_VI97HAXpY6yYWAAAC".into(),
///     upgrades: vec!["websocket".into()],
///     ping_interval: 25000,
///     ping_timeout: 20000,
///     max_payload: Some(1_000_000),
/// };
/// assert_eq!(
///     Packet::Open(open).encode_text(ProtocolVersion::V4),
///     r#"0{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}"#,
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenPacket {
    /// The session id (`sid`), sent back by the client on every request.
    pub sid: String,
    /// The transports the client may upgrade to (`upgrades`), e.g.
    /// `["websocket"]` on a polling transport, `[]` on a WebSocket one.
    pub upgrades: Vec<String>,
    /// Milliseconds between heartbeats (`pingInterval`).
    pub ping_interval: u64,
    /// Milliseconds to wait for the heartbeat answer (`pingTimeout`).
    pub ping_timeout: u64,
    /// The most bytes the client may put in one polling payload
    /// (`maxPayload`). Protocol v3 does not define it: a v3 server may leave
    /// it out (`None`); Node's engine.io sends it to v3 clients too, which
    /// ignore it. Written only when `Some`; `None` when absent on decoding
    /// (no limit, as engine.io-client reads it).
    pub max_payload: Option<u64>,
}

/// The JSON form of [`OpenPacket`] on encoding.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct OpenJsonOut<'a> {
    sid: &'a str,
    upgrades: &'a [String],
    ping_interval: u64,
    ping_timeout: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_payload: Option<u64>,
}

/// The JSON form of [`OpenPacket`] on decoding: `upgrades` may be missing
/// (v3 WebSocket-only handshakes leave it out), unknown keys are ignored.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct OpenJsonIn {
    sid: String,
    #[serde(default)]
    upgrades: Vec<String>,
    ping_interval: u64,
    ping_timeout: u64,
    #[serde(default)]
    max_payload: Option<u64>,
}

impl OpenPacket {
    /// The handshake as the JSON object an `open` packet carries; keys in
    /// the order Node's engine.io writes them.
    pub fn to_json(&self) -> String {
        serde_json::to_string(&OpenJsonOut {
            sid: &self.sid,
            upgrades: &self.upgrades,
            ping_interval: self.ping_interval,
            ping_timeout: self.ping_timeout,
            max_payload: self.max_payload,
        })
        .expect("strings, string arrays and integers always serialize")
    }

    /// Reads the JSON object of an `open` packet.
    ///
    /// `sid`, `pingInterval` and `pingTimeout` are required; `upgrades`
    /// defaults to none and `maxPayload` to `None`; other keys are ignored.
    ///
    /// ```
    /// use switchboard_core::engineio::OpenPacket;
    /// let open = OpenPacket::from_json(r#"{"sid":"abc","pingInterval":25000,"pingTimeout":5000}"#)
    ///     .unwrap();
    /// assert_eq!(open.sid, "abc");
    /// assert!(open.upgrades.is_empty());
    /// assert_eq!(open.max_payload, None);
    /// ```
    pub fn from_json(json: &str) -> Result<Self, DecodeError> {
        let parsed: OpenJsonIn =
            serde_json::from_str(json).map_err(|e| DecodeError::InvalidOpen(e.to_string()))?;
        Ok(OpenPacket {
            sid: parsed.sid,
            upgrades: parsed.upgrades,
            ping_interval: parsed.ping_interval,
            ping_timeout: parsed.ping_timeout,
            max_payload: parsed.max_payload,
        })
    }
}

/// One Engine.IO packet.
///
/// ```
/// use switchboard_core::engineio::{Packet, ProtocolVersion};
/// use switchboard_core::ws::Message;
/// let v4 = ProtocolVersion::V4;
/// assert_eq!(Packet::text("hello").encode_ws(v4), Message::text("4hello"));
/// assert_eq!(Packet::binary(vec![1, 2]).encode_ws(v4), Message::binary(vec![1, 2]));
/// assert_eq!(Packet::binary(vec![1, 2]).encode_ws(ProtocolVersion::V3), Message::binary(vec![4, 1, 2]));
/// assert_eq!(Packet::decode_ws_text("4hello", v4), Ok(Packet::text("hello")));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    /// `0`: the server's handshake.
    Open(OpenPacket),
    /// `1`: close the session. Data after the type is ignored on decoding.
    Close,
    /// `2`: a ping, with optional text data (`probe` during an upgrade).
    /// `Some("")` encodes like `None`, and decodes as `None`.
    Ping(Option<String>),
    /// `3`: a pong, with optional text data (echoing the ping's).
    /// `Some("")` encodes like `None`, and decodes as `None`.
    Pong(Option<String>),
    /// `4`: application data, text or binary.
    Message(MessageData),
    /// `5`: upgrade to the transport the packet arrives on. Data after the
    /// type is ignored on decoding.
    Upgrade,
    /// `6`: nothing. Data after the type is ignored on decoding.
    Noop,
}

impl Packet {
    /// A text message.
    pub fn text(text: impl Into<Text>) -> Self {
        Packet::Message(MessageData::Text(text.into()))
    }

    /// A binary message.
    pub fn binary(data: impl Into<Bytes>) -> Self {
        Packet::Message(MessageData::Binary(data.into()))
    }

    /// The packet's type.
    pub fn packet_type(&self) -> PacketType {
        match self {
            Packet::Open(_) => PacketType::Open,
            Packet::Close => PacketType::Close,
            Packet::Ping(_) => PacketType::Ping,
            Packet::Pong(_) => PacketType::Pong,
            Packet::Message(_) => PacketType::Message,
            Packet::Upgrade => PacketType::Upgrade,
            Packet::Noop => PacketType::Noop,
        }
    }

    /// Whether this is a binary message.
    pub fn is_binary(&self) -> bool {
        matches!(self, Packet::Message(MessageData::Binary(_)))
    }

    /// The packet as one WebSocket message: a text message, except binary
    /// messages, which are sent as a binary WebSocket message (v4: the bytes
    /// as they are; v3: a `0x04` type byte, then the bytes).
    ///
    /// A peer that asked for base64 (`b64=1`) gets [`Packet::encode_text`]
    /// in a text message instead.
    pub fn encode_ws(&self, version: ProtocolVersion) -> WsMessage {
        match self {
            Packet::Message(MessageData::Binary(data)) => match version {
                ProtocolVersion::V4 => WsMessage::Binary(data.clone()),
                ProtocolVersion::V3 => {
                    let mut framed = Vec::with_capacity(1 + data.len());
                    framed.push(PacketType::Message.as_u8());
                    framed.extend_from_slice(data);
                    WsMessage::Binary(framed.into())
                }
            },
            _ => WsMessage::Text(self.encode_text(version).into()),
        }
    }

    /// The packet as text: its type digit, then its data; a binary message
    /// as `b` and its base64 (v4), or `b4` and its base64 (v3).
    ///
    /// This is the form of a packet inside a text polling payload, and of a
    /// WebSocket text message.
    ///
    /// ```
    /// use switchboard_core::engineio::{Packet, ProtocolVersion};
    /// assert_eq!(Packet::Ping(Some("probe".into())).encode_text(ProtocolVersion::V4), "2probe");
    /// assert_eq!(Packet::Noop.encode_text(ProtocolVersion::V4), "6");
    /// assert_eq!(Packet::binary(vec![1, 2, 3, 4]).encode_text(ProtocolVersion::V4), "bAQIDBA==");
    /// assert_eq!(Packet::binary(vec![1, 2, 3, 4]).encode_text(ProtocolVersion::V3), "b4AQIDBA==");
    /// ```
    pub fn encode_text(&self, version: ProtocolVersion) -> String {
        let mut out = String::with_capacity(self.text_len_hint());
        self.write_text(&mut out, version);
        out
    }

    /// A guess of the length of [`Packet::encode_text`], for reserving.
    pub(crate) fn text_len_hint(&self) -> usize {
        match self {
            Packet::Open(open) => 96 + open.sid.len(),
            Packet::Ping(Some(data)) | Packet::Pong(Some(data)) => 1 + data.len(),
            Packet::Message(MessageData::Text(text)) => 1 + text.len(),
            Packet::Message(MessageData::Binary(data)) => 2 + data.len().div_ceil(3) * 4,
            _ => 1,
        }
    }

    /// Appends [`Packet::encode_text`] to `out`.
    pub(crate) fn write_text(&self, out: &mut String, version: ProtocolVersion) {
        match self {
            Packet::Open(open) => {
                out.push(PacketType::Open.as_char());
                out.push_str(&open.to_json());
            }
            Packet::Ping(data) | Packet::Pong(data) => {
                out.push(self.packet_type().as_char());
                if let Some(data) = data {
                    out.push_str(data);
                }
            }
            Packet::Message(MessageData::Text(text)) => {
                out.push(PacketType::Message.as_char());
                out.push_str(text);
            }
            Packet::Message(MessageData::Binary(data)) => {
                out.push('b');
                if version == ProtocolVersion::V3 {
                    out.push(PacketType::Message.as_char());
                }
                BASE64.encode_string(data, out);
            }
            Packet::Close | Packet::Upgrade | Packet::Noop => {
                out.push(self.packet_type().as_char());
            }
        }
    }

    /// Decodes a WebSocket text message holding one packet.
    ///
    /// Also accepts a binary message in its base64 text form (`b...`), as
    /// clients that cannot send binary frames do.
    ///
    /// ```
    /// use switchboard_core::engineio::{DecodeError, Packet, ProtocolVersion};
    /// let v4 = ProtocolVersion::V4;
    /// assert_eq!(Packet::decode_ws_text("5", v4), Ok(Packet::Upgrade));
    /// assert_eq!(Packet::decode_ws_text("bAQID", v4), Ok(Packet::binary(vec![1, 2, 3])));
    /// assert_eq!(Packet::decode_ws_text("9", v4), Err(DecodeError::UnknownPacketType('9')));
    /// // Text not known to be `'static` is copied in:
    /// let received = String::from("4hi");
    /// assert_eq!(Packet::decode_ws_text(received, v4), Ok(Packet::text("hi")));
    /// ```
    pub fn decode_ws_text(
        text: impl Into<Text>,
        version: ProtocolVersion,
    ) -> Result<Packet, DecodeError> {
        decode_text_packet(text.into(), version)
    }

    /// Decodes a WebSocket binary message holding one packet: always a
    /// binary message (v4: all of it; v3: after its `0x04` type byte).
    ///
    /// ```
    /// use switchboard_core::engineio::{Packet, ProtocolVersion};
    /// let frame: &'static [u8] = &[4, 0, 1, 2, 3, 4, 5];
    /// assert_eq!(
    ///     Packet::decode_ws_binary(frame, ProtocolVersion::V3),
    ///     Ok(Packet::binary(vec![0, 1, 2, 3, 4, 5])),
    /// );
    /// assert_eq!(
    ///     Packet::decode_ws_binary(frame, ProtocolVersion::V4),
    ///     Ok(Packet::binary(frame)),
    /// );
    /// ```
    pub fn decode_ws_binary(
        data: impl Into<Bytes>,
        version: ProtocolVersion,
    ) -> Result<Packet, DecodeError> {
        let data = data.into();
        match version {
            ProtocolVersion::V4 => Ok(Packet::Message(MessageData::Binary(data))),
            ProtocolVersion::V3 => decode_v3_binary_packet(data),
        }
    }
}

/// Decodes the text form of one packet (see [`Packet::encode_text`]).
pub(crate) fn decode_text_packet(
    text: Text,
    version: ProtocolVersion,
) -> Result<Packet, DecodeError> {
    let s = text.as_str();
    let first = s.chars().next().ok_or(DecodeError::EmptyPacket)?;
    if first == 'b' {
        let encoded = match version {
            ProtocolVersion::V4 => &s[1..],
            ProtocolVersion::V3 => {
                let kind = s[1..].chars().next().ok_or(DecodeError::EmptyPacket)?;
                let kind =
                    PacketType::from_char(kind).ok_or(DecodeError::UnknownPacketType(kind))?;
                if kind != PacketType::Message {
                    return Err(DecodeError::BinaryNotMessage(kind));
                }
                &s[2..]
            }
        };
        let data = BASE64
            .decode(encoded)
            .map_err(|_| DecodeError::InvalidBase64)?;
        return Ok(Packet::binary(data));
    }
    let kind = PacketType::from_char(first).ok_or(DecodeError::UnknownPacketType(first))?;
    // The type is an ASCII digit: its data starts at byte 1.
    let data = &s[1..];
    let optional = || (!data.is_empty()).then(|| data.to_owned());
    Ok(match kind {
        PacketType::Open => Packet::Open(OpenPacket::from_json(data)?),
        PacketType::Close => Packet::Close,
        PacketType::Ping => Packet::Ping(optional()),
        PacketType::Pong => Packet::Pong(optional()),
        PacketType::Message => {
            let data = text.into_bytes().slice(1..);
            Packet::Message(MessageData::Text(Text::from_validated(data)))
        }
        PacketType::Upgrade => Packet::Upgrade,
        PacketType::Noop => Packet::Noop,
    })
}

/// Decodes a v3 binary packet: a type byte (which must be `message`), then
/// the data.
pub(crate) fn decode_v3_binary_packet(data: Bytes) -> Result<Packet, DecodeError> {
    let &first = data.first().ok_or(DecodeError::EmptyPacket)?;
    let kind = PacketType::from_u8(first).ok_or(DecodeError::UnknownPacketType(first.into()))?;
    if kind != PacketType::Message {
        return Err(DecodeError::BinaryNotMessage(kind));
    }
    Ok(Packet::binary(data.slice(1..)))
}

/// Invalid Engine.IO input: a packet or a polling payload the peer sent.
///
/// A server answers a bad polling request body with
/// [`DecodeError::status`] and closes the session; on a WebSocket, it
/// closes the session.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// A packet with nothing in it, not even a type.
    #[error("empty packet")]
    EmptyPacket,
    /// A polling request body with nothing in it.
    #[error("empty payload")]
    EmptyPayload,
    /// A packet type other than 0-6 (a character of a text packet, or the
    /// byte of a v3 binary packet as a `char`).
    #[error("unknown packet type {0:?}")]
    UnknownPacketType(char),
    /// A binary packet of a type other than `message`: only messages carry
    /// binary data.
    #[error("binary {0:?} packet: only messages carry binary data")]
    BinaryNotMessage(PacketType),
    /// A base64-encoded binary message that is not valid base64.
    #[error("invalid base64 in a binary message")]
    InvalidBase64,
    /// A v3 payload whose length prefix is not a decimal number, overflows,
    /// or ends inside a character; or a v3 binary payload whose header is
    /// malformed.
    #[error("invalid length prefix in a payload")]
    InvalidLength,
    /// A payload that ends before the length its prefix announces, or in
    /// the middle of a length prefix.
    #[error("truncated payload")]
    Truncated,
    /// Text that is not valid UTF-8.
    #[error("invalid UTF-8")]
    InvalidUtf8,
    /// An `open` packet whose data is not the expected JSON object.
    #[error("invalid handshake data: {0}")]
    InvalidOpen(String),
    /// A polling body larger than [`PayloadLimits::max_bytes`](super::PayloadLimits::max_bytes).
    #[error("payload of {size} bytes exceeds the limit of {limit}")]
    PayloadTooLarge {
        /// The body's size in bytes.
        size: usize,
        /// The limit in bytes.
        limit: usize,
    },
    /// A polling body with more than [`PayloadLimits::max_packets`](super::PayloadLimits::max_packets) packets.
    #[error("payload holds more than {limit} packets")]
    TooManyPackets {
        /// The limit.
        limit: usize,
    },
    /// A binary (`application/octet-stream`) polling body in protocol v4,
    /// where polling payloads are always text.
    #[error("binary payload in protocol v4")]
    BinaryPayloadV4,
}

impl DecodeError {
    /// The HTTP status a server answers a polling request body with this
    /// error: 413 for a body over the size limit (as Node's engine.io), 400
    /// otherwise.
    pub fn status(&self) -> u16 {
        match self {
            DecodeError::PayloadTooLarge { .. } => 413,
            _ => 400,
        }
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! Strategies shared by the packet and payload tests.

    use super::*;
    use proptest::prelude::*;

    /// Any string, or (with `no_separator`) any string without U+001E, the
    /// v4 polling separator that text cannot carry there.
    pub(crate) fn arb_string(no_separator: bool) -> impl Strategy<Value = String> {
        // Mix arbitrary Unicode (astral characters count twice in v3 lengths)
        // with characters that look like wire syntax.
        prop_oneof![any::<String>(), "[0-9b:\\x1e€😀a-zA-Z+/=]{0,12}",].prop_map(move |s| {
            if no_separator {
                s.replace('\u{1e}', "")
            } else {
                s
            }
        })
    }

    /// Optional ping or pong data (never `Some("")`, which decodes as `None`).
    fn optional(no_separator: bool) -> impl Strategy<Value = Option<String>> {
        proptest::option::of(arb_string(no_separator)).prop_map(|s| s.filter(|s| !s.is_empty()))
    }

    /// Any packet; with `no_separator`, one that a v4 polling payload can
    /// carry.
    pub(crate) fn arb_packet(no_separator: bool) -> impl Strategy<Value = Packet> {
        prop_oneof![
            (
                any::<String>(),
                proptest::collection::vec(any::<String>(), 0..3),
                any::<u64>(),
                any::<u64>(),
                any::<Option<u64>>()
            )
                .prop_map(
                    |(sid, upgrades, ping_interval, ping_timeout, max_payload)| {
                        Packet::Open(OpenPacket {
                            sid,
                            upgrades,
                            ping_interval,
                            ping_timeout,
                            max_payload,
                        })
                    }
                ),
            Just(Packet::Close),
            optional(no_separator).prop_map(Packet::Ping),
            optional(no_separator).prop_map(Packet::Pong),
            arb_string(no_separator).prop_map(Packet::text),
            proptest::collection::vec(any::<u8>(), 0..40).prop_map(Packet::binary),
            Just(Packet::Upgrade),
            Just(Packet::Noop),
        ]
    }

    /// Either protocol version.
    pub(crate) fn arb_version() -> impl Strategy<Value = ProtocolVersion> {
        prop_oneof![Just(ProtocolVersion::V3), Just(ProtocolVersion::V4)]
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;
    use proptest::prelude::*;

    const V3: ProtocolVersion = ProtocolVersion::V3;
    const V4: ProtocolVersion = ProtocolVersion::V4;

    fn ping(data: &str) -> Packet {
        Packet::Ping(Some(data.into()))
    }

    #[test]
    fn packet_types() {
        for n in 0..=6u8 {
            let kind = PacketType::from_u8(n).unwrap();
            assert_eq!(kind.as_u8(), n);
            assert_eq!(PacketType::from_char(kind.as_char()), Some(kind));
        }
        assert_eq!(PacketType::from_u8(7), None);
        assert_eq!(PacketType::from_char('7'), None);
        assert_eq!(PacketType::from_char('b'), None);
        assert_eq!(PacketType::from_char('٤'), None);
    }

    /// The examples of the protocol documents (v4: "Packet encoding",
    /// "Upgrade"; v3: "Encoding", "Sample session").
    #[test]
    fn spec_text_examples() {
        for version in [V3, V4] {
            let cases = [
                ("2probe", ping("probe")),
                ("3probe", Packet::Pong(Some("probe".into()))),
                ("2", Packet::Ping(None)),
                ("3", Packet::Pong(None)),
                ("4hello", Packet::text("hello")),
                ("4HelloWorld", Packet::text("HelloWorld")),
                ("4", Packet::text("")),
                ("4€", Packet::text("€")),
                ("1", Packet::Close),
                ("5", Packet::Upgrade),
                ("6", Packet::Noop),
            ];
            for (wire, packet) in cases {
                assert_eq!(
                    Packet::decode_ws_text(wire, version),
                    Ok(packet.clone()),
                    "{wire}"
                );
                assert_eq!(packet.encode_text(version), wire);
                assert_eq!(packet.encode_ws(version), WsMessage::text(wire));
            }
        }
    }

    #[test]
    fn binary_messages_over_websocket() {
        // v3 "Packet": `4|0|1|2|3|4|5` is a binary message of bytes 0-5.
        let v3_frame = Bytes::from_static(&[4u8, 0, 1, 2, 3, 4, 5]);
        let packet = Packet::binary(vec![0, 1, 2, 3, 4, 5]);
        assert_eq!(
            Packet::decode_ws_binary(v3_frame.clone(), V3),
            Ok(packet.clone())
        );
        assert_eq!(packet.encode_ws(V3), WsMessage::binary(v3_frame));
        // v4: "Binary payloads are sent as is, without modification."
        assert_eq!(
            Packet::decode_ws_binary(Bytes::from_static(&[0u8, 1, 2, 3, 4, 5]), V4),
            Ok(packet.clone())
        );
        assert_eq!(
            packet.encode_ws(V4),
            WsMessage::binary(vec![0, 1, 2, 3, 4, 5])
        );
        // Empty binary messages.
        assert_eq!(
            Packet::decode_ws_binary(Bytes::new(), V4),
            Ok(Packet::binary(Bytes::new()))
        );
        assert_eq!(
            Packet::decode_ws_binary(Bytes::from_static(&[4u8]), V3),
            Ok(Packet::binary(Bytes::new()))
        );
        assert_eq!(
            Packet::binary(Bytes::new()).encode_ws(V3),
            WsMessage::binary(vec![4])
        );
        // Base64 text forms (v4 "HTTP long-polling"; v3 "Payload").
        assert_eq!(
            Packet::decode_ws_text("bAQIDBA==", V4),
            Ok(Packet::binary(vec![1, 2, 3, 4]))
        );
        assert_eq!(
            Packet::decode_ws_text("b4AQIDBA==", V3),
            Ok(Packet::binary(vec![1, 2, 3, 4]))
        );
        assert_eq!(
            Packet::decode_ws_text("b", V4),
            Ok(Packet::binary(Bytes::new()))
        );
        assert_eq!(
            Packet::decode_ws_text("b4", V3),
            Ok(Packet::binary(Bytes::new()))
        );
        // Padding is optional on input.
        assert_eq!(
            Packet::decode_ws_text("bAQIDBA", V4),
            Ok(Packet::binary(vec![1, 2, 3, 4]))
        );
    }

    #[test]
    fn handshakes() {
        // v4 "Handshake" example.
        let v4_open = OpenPacket {
            sid: "lv_VI97HAXpY6yYWAAAC".into(),
            upgrades: vec!["websocket".into()],
            ping_interval: 25000,
            ping_timeout: 20000,
            max_payload: Some(1_000_000),
        };
        let wire = r#"0{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}"#;
        assert_eq!(Packet::Open(v4_open.clone()).encode_text(V4), wire);
        assert_eq!(Packet::decode_ws_text(wire, V4), Ok(Packet::Open(v4_open)));
        // The same, pretty-printed as in the document.
        let pretty = "0{\n  \"sid\": \"lv_VI97HAXpY6yYWAAAC\",\n  \"upgrades\": [\"websocket\"],\n  \
                      \"pingInterval\": 25000,\n  \"pingTimeout\": 20000,\n  \"maxPayload\": 1000000\n}";
        assert!(matches!(
            Packet::decode_ws_text(pretty, V4),
            Ok(Packet::Open(_))
        ));

        // v3 "Sample session": polling handshake, without maxPayload.
        let v3_open = OpenPacket {
            sid: "lv_VI97HAXpY6yYWAAAC".into(),
            upgrades: vec!["websocket".into()],
            ping_interval: 25000,
            ping_timeout: 5000,
            max_payload: None,
        };
        let wire = r#"0{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":5000}"#;
        assert_eq!(Packet::Open(v3_open.clone()).encode_text(V3), wire);
        assert_eq!(Packet::decode_ws_text(wire, V3), Ok(Packet::Open(v3_open)));
        // v3 "Sample session with WebSocket only": no upgrades key.
        let wire = r#"0{"sid":"lv_VI97HAXpY6yYWAAAC","pingInterval":25000,"pingTimeout":5000}"#;
        let Ok(Packet::Open(open)) = Packet::decode_ws_text(wire, V3) else {
            panic!()
        };
        assert!(open.upgrades.is_empty());
        // Unknown keys are ignored.
        let wire =
            r#"0{"sid":"x","upgrades":[],"pingInterval":1,"pingTimeout":2,"extra":{"a":[null]}}"#;
        assert!(matches!(
            Packet::decode_ws_text(wire, V4),
            Ok(Packet::Open(_))
        ));
    }

    #[test]
    fn bad_handshakes() {
        for json in [
            "",
            "{}",
            "null",
            "[]",
            r#"{"sid":1,"pingInterval":1,"pingTimeout":2}"#,
            r#"{"sid":"x","pingInterval":-1,"pingTimeout":2}"#,
            r#"{"sid":"x","pingInterval":1.5,"pingTimeout":2}"#,
            r#"{"sid":"x","pingInterval":1}"#,
            r#"{"sid":"x","upgrades":"websocket","pingInterval":1,"pingTimeout":2}"#,
            r#"{"sid":"x","pingInterval":1,"pingTimeout":2,"maxPayload":"1"}"#,
            r#"{"sid":"x","pingInterval":1,"pingTimeout":2}trailing"#,
            r#"{"sid":"x","sid":"y","pingInterval":1,"pingTimeout":2}"#,
        ] {
            let result = Packet::decode_ws_text(format!("0{json}"), V4);
            assert!(
                matches!(result, Err(DecodeError::InvalidOpen(_))),
                "{json}: {result:?}"
            );
        }
        // Deep nesting is refused, not a stack overflow.
        let deep = format!("0{}", "[".repeat(100_000));
        assert!(matches!(
            Packet::decode_ws_text(deep, V4),
            Err(DecodeError::InvalidOpen(_))
        ));
    }

    #[test]
    fn data_after_dataless_types_is_ignored() {
        assert_eq!(Packet::decode_ws_text("1bye", V4), Ok(Packet::Close));
        assert_eq!(Packet::decode_ws_text("5x", V3), Ok(Packet::Upgrade));
        assert_eq!(Packet::decode_ws_text("6abc", V4), Ok(Packet::Noop));
        assert_eq!(Packet::Ping(Some(String::new())).encode_text(V4), "2");
    }

    #[test]
    fn decode_errors() {
        use DecodeError::*;
        let text_cases: [(&str, ProtocolVersion, DecodeError); 11] = [
            ("", V4, EmptyPacket),
            ("", V3, EmptyPacket),
            ("7", V4, UnknownPacketType('7')),
            ("x", V3, UnknownPacketType('x')),
            ("€4", V4, UnknownPacketType('€')),
            ("b", V3, EmptyPacket),
            ("b9AQ==", V3, UnknownPacketType('9')),
            ("b2AQ==", V3, BinaryNotMessage(PacketType::Ping)),
            ("b!!!!", V4, InvalidBase64),
            ("bA", V4, InvalidBase64),
            ("b4AQ=x", V3, InvalidBase64),
        ];
        for (wire, version, error) in text_cases {
            assert_eq!(
                Packet::decode_ws_text(wire, version),
                Err(error),
                "{wire:?}"
            );
        }
        assert_eq!(Packet::decode_ws_binary(Bytes::new(), V3), Err(EmptyPacket));
        assert_eq!(
            Packet::decode_ws_binary(Bytes::from_static(&[7u8]), V3),
            Err(UnknownPacketType('\u{7}'))
        );
        assert_eq!(
            Packet::decode_ws_binary(Bytes::from_static(&[b'4', 1]), V3),
            Err(UnknownPacketType('\u{34}'))
        );
        assert_eq!(
            Packet::decode_ws_binary(Bytes::from_static(&[2u8, 1]), V3),
            Err(BinaryNotMessage(PacketType::Ping))
        );
        assert_eq!(EmptyPacket.status(), 400);
        assert_eq!(PayloadTooLarge { size: 2, limit: 1 }.status(), 413);
    }

    #[test]
    fn decoded_text_shares_the_received_buffer() {
        let received = Text::from(String::from("4shared"));
        let start = received.as_bytes().as_ptr();
        let Ok(Packet::Message(MessageData::Text(text))) = Packet::decode_ws_text(received, V4)
        else {
            panic!()
        };
        assert_eq!(text, "shared");
        assert_eq!(text.as_bytes().as_ptr(), start.wrapping_add(1));
    }

    proptest! {
        #[test]
        fn websocket_round_trip(packet in arb_packet(false), version in arb_version()) {
            let decoded = match packet.encode_ws(version) {
                WsMessage::Text(text) => Packet::decode_ws_text(text, version),
                WsMessage::Binary(data) => Packet::decode_ws_binary(data, version),
                other => panic!("{other:?}"),
            };
            prop_assert_eq!(decoded, Ok(packet));
        }

        #[test]
        fn text_form_round_trip(packet in arb_packet(false), version in arb_version()) {
            let text = packet.encode_text(version);
            prop_assert!(text.len() <= packet.text_len_hint() || matches!(packet, Packet::Open(_)));
            prop_assert_eq!(Packet::decode_ws_text(text, version), Ok(packet));
        }

        #[test]
        fn any_text_decodes_or_fails(text in any::<String>(), version in arb_version()) {
            let _ = Packet::decode_ws_text(text, version);
        }

        #[test]
        fn wire_like_text_decodes_or_fails(
            text in "[0-7b][0-9b:A-Za-z+/={}\",\\[\\]]{0,24}",
            version in arb_version(),
        ) {
            let _ = Packet::decode_ws_text(text, version);
        }

        #[test]
        fn any_bytes_decode_or_fail(data in proptest::collection::vec(any::<u8>(), 0..64), version in arb_version()) {
            let _ = Packet::decode_ws_binary(data, version);
        }
    }
}
