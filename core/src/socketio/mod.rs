//! Socket.IO packets (protocol v5, and v4 for socket.io 2.x clients over
//! Engine.IO v3), sans IO.
//!
//! This module owns the Socket.IO packet layer:
//!
//! - [`ProtocolVersion`]: which revision a peer speaks, from its Engine.IO
//!   revision.
//! - [`Packet`], [`PacketKind`], [`RawJson`]: one packet, its payload kept
//!   as received JSON text and its binary attachments as [`Bytes`](bytes::Bytes).
//! - Encoding: [`Packet::encode`], and [`encode_event`] / [`encode_ack`],
//!   which write an event or ack straight from serde values into one
//!   buffer. The result ([`Encoded`]) is one Engine.IO text message and one
//!   binary message per attachment.
//! - Decoding: the [`Decoder`], fed Engine.IO messages
//!   ([`MessageData`](crate::engineio::MessageData)), hands out complete
//!   packets, reassembling binary packets from the messages that follow
//!   them; [`DecodeError`] says what was wrong, and that a server closes the
//!   session over it.
//! - [`Binary`]: binary data inside serde values.
//!
//! Namespaces, sockets, rooms, ack bookkeeping and the connection handshake
//! build on these packets in [`server`].
//!
//! # Payloads and binary data
//!
//! A decoded packet keeps its payload as the JSON text it arrived in (a
//! slice of the Engine.IO message, not a copy), validated once and read
//! lazily: [`Packet::event_name`] reads only the name, and
//! [`Packet::args`], [`Packet::arg`] and [`Packet::data`] read typed values
//! with serde (`&str` borrowed from the message) when the application asks.
//! A packet can be sent on (forwarded, broadcast) without being re-encoded.
//!
//! Binary data goes through serde rather than a `Value` type of our own
//! with a binary variant: application types stay plain `#[derive(Serialize,
//! Deserialize)]` structs with a [`Binary`] field (or any type that
//! serializes as bytes), and the common case, JSON without binary, pays
//! nothing for it. On encoding, a serializer wrapper writes each binary value
//! as the placeholder `{"_placeholder":true,"num":N}` and collects its bytes;
//! on decoding, a deserializer wrapper hands a type that reads bytes the
//! attachment its placeholder points to. [`Binary`] moves its bytes both
//! ways without copying them. A placeholder read into a dynamic
//! `serde_json::Value` stays the object it is on the wire, with the bytes
//! in [`Packet::attachments`] at index `num`.
//!
//! # Protocol v4
//!
//! Socket.IO v2 clients speak protocol v4 over Engine.IO v3
//! ([`ProtocolVersion::from_engineio`]). The packet format is the same;
//! the differences the codec handles:
//!
//! - a CONNECT carries no payload; the client may put a query in its
//!   namespace (`0/admin?token=1,`). The decoder splits it off and gives it
//!   as the packet's data, a JSON object of strings (`{"token":"1"}`), as
//!   Node's server reads it into the handshake's auth (a JSON payload, which
//!   v2 clients do not send, is then ignored); the encoder writes a
//!   CONNECT's object payload back as that query;
//! - CONNECT_ERROR (called ERROR there) carries a string, or any JSON value
//!   (Node sends `err.data || err.message`), not `{"message", "data"}`:
//!   see [`Packet::connect_error`];
//! - the server's CONNECT carries no `sid` ([`Packet::connect_reply`]);
//! - a client is connected to the main namespace without sending a
//!   CONNECT, and the server sends it the CONNECT for `/` at once
//!   ([`ProtocolVersion::connects_implicitly`]).
//!
//! # Limits
//!
//! - [`DecoderConfig::max_attachments`]: at most 10 attachments per packet
//!   by default, the official parser's default; the decoder holds at most
//!   that many binary messages at a time.
//! - The size of each message (the packet's text, each attachment) is
//!   bounded by Engine.IO's limit (`maxPayload`, 1 MB by default).
//! - JSON nesting is bounded at [`MAX_JSON_DEPTH`] (127) levels, what
//!   serde_json reads back: deeper payloads are refused as invalid JSON.
//!
//! # Differences from Node's socket.io-parser
//!
//! Where the official parser is lenient or quirky, the decoder is strict:
//!
//! - an event's name must be a string (parser 4 also takes a number);
//! - an attachment count must be decimal digits (`51e1-` is refused) and an
//!   ack id must be digits followed by the payload or the end; one that
//!   overflows 64 bits is refused;
//! - a placeholder's `num` must be an integer (`0.5` or `1.0` is refused;
//!   the parser takes any number and yields `undefined` for a fraction);
//!   placeholders are checked when the packet's text arrives, before its
//!   attachments;
//! - an ack must have an ack id, and a namespace must not hold control
//!   characters;
//! - JSON must be what a `serde_json::Value` holds: a number out of
//!   `f64`'s range (`1e400`, which `JSON.parse` reads as `Infinity`) or a
//!   lone surrogate escape (`"\ud800"`) is refused, so whatever decodes
//!   can be read as values;
//! - in protocol v4, a CONNECT's namespace is split at its first `?` and
//!   the query decoded as `URLSearchParams` would; the path is not
//!   otherwise normalized, as Node's `URL` would.
//!
//! Events named like the [`RESERVED_EVENTS`] are refused in both revisions
//! by default, as socket.io-parser 4 (which Node's server also uses for v2
//! clients) does.
//!
//! # Example
//!
//! A binary event, encoded, then decoded from its Engine.IO messages:
//!
//! ```
//! use switchboard_core::socketio::{
//!     encode_event, Binary, Decoder, DecoderConfig, PacketKind, ProtocolVersion,
//! };
//!
//! #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
//! struct Upload {
//!     name: String,
//!     file: Binary,
//! }
//!
//! let upload = Upload { name: "a.png".into(), file: Binary::from(vec![0x89, b'P', b'N', b'G']) };
//! let encoded = encode_event("/files", "upload", &upload, Some(7)).unwrap();
//! assert_eq!(
//!     encoded.text,
//!     r#"51-/files,7["upload",{"name":"a.png","file":{"_placeholder":true,"num":0}}]"#,
//! );
//! assert_eq!(encoded.attachments, [vec![0x89, b'P', b'N', b'G']]);
//!
//! let mut decoder = Decoder::new(ProtocolVersion::V5, DecoderConfig::default());
//! let mut messages = encoded.into_messages();
//! assert_eq!(decoder.receive(messages.next().unwrap()), Ok(None)); // waits for 1 attachment
//! let packet = decoder.receive(messages.next().unwrap()).unwrap().unwrap();
//! assert_eq!(packet.kind, PacketKind::BinaryEvent);
//! assert_eq!((packet.namespace.as_str(), packet.id), ("/files", Some(7)));
//! assert_eq!(packet.event_name().as_deref(), Some("upload"));
//! let (received,): (Upload,) = packet.args().unwrap();
//! assert_eq!(received, upload);
//! ```

mod binary;
pub mod client;
mod packet;
pub mod server;

pub use binary::Binary;
pub use packet::{
    ConnectErrorData, DEFAULT_NAMESPACE, DecodeError, Decoder, DecoderConfig, EncodeError, Encoded,
    MAX_JSON_DEPTH, Packet, PacketKind, RESERVED_EVENTS, RawJson, encode_ack, encode_event,
    is_reserved_event,
};

use crate::engineio;

/// The revision of the Socket.IO protocol a peer speaks, which follows
/// from its Engine.IO revision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProtocolVersion {
    /// Revision 4: socket.io 1.x-2.x, over Engine.IO v3.
    V4,
    /// Revision 5: socket.io 3 and later, over Engine.IO v4.
    V5,
}

impl ProtocolVersion {
    /// The revision spoken over an Engine.IO session of revision `eio`.
    ///
    /// ```
    /// use switchboard_core::{engineio, socketio::ProtocolVersion};
    /// assert_eq!(ProtocolVersion::from_engineio(engineio::ProtocolVersion::V3), ProtocolVersion::V4);
    /// assert_eq!(ProtocolVersion::from_engineio(engineio::ProtocolVersion::V4), ProtocolVersion::V5);
    /// ```
    pub const fn from_engineio(eio: engineio::ProtocolVersion) -> Self {
        match eio {
            engineio::ProtocolVersion::V3 => ProtocolVersion::V4,
            engineio::ProtocolVersion::V4 => ProtocolVersion::V5,
        }
    }

    /// The Engine.IO revision this revision runs over.
    pub const fn engineio(self) -> engineio::ProtocolVersion {
        match self {
            ProtocolVersion::V4 => engineio::ProtocolVersion::V3,
            ProtocolVersion::V5 => engineio::ProtocolVersion::V4,
        }
    }

    /// Whether a client is in the main namespace `/` as soon as its
    /// Engine.IO session opens, without sending a CONNECT (v4: the server
    /// then sends the CONNECT for `/` unasked); in v5 every namespace,
    /// `/` included, is joined with a CONNECT.
    pub const fn connects_implicitly(self) -> bool {
        matches!(self, ProtocolVersion::V4)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        for eio in [engineio::ProtocolVersion::V3, engineio::ProtocolVersion::V4] {
            assert_eq!(ProtocolVersion::from_engineio(eio).engineio(), eio);
        }
        assert!(ProtocolVersion::V4.connects_implicitly());
        assert!(!ProtocolVersion::V5.connects_implicitly());
    }
}
