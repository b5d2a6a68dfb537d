//! Engine.IO (protocol v4, and v3 for old clients), sans IO.
//!
//! This module owns every Engine.IO wire rule:
//!
//! - [`ProtocolVersion`]: which revision a peer speaks (the `EIO` query
//!   parameter).
//! - [`Packet`], [`PacketType`], [`MessageData`], [`OpenPacket`]: one packet,
//!   its handshake data, and its codec over the WebSocket transport (one
//!   packet per WebSocket message: [`Packet::encode_ws`],
//!   [`Packet::decode_ws_text`], [`Packet::decode_ws_binary`]).
//! - [`encode_payload`], [`decode_payload`]: the HTTP long-polling bodies
//!   that carry several packets (v4: record-separated, binary as base64; v3:
//!   length-prefixed strings, or the binary payload format).
//! - [`new_sid`]: unguessable session ids.
//! - [`client`]: the client state machine ([`Client`]): the handshake, the
//!   polling cycle, the upgrade to WebSocket, heartbeats and the close.
//!
//! Nothing here performs IO or reads a clock. Decoders never panic, whatever
//! the input, and never allocate more than a constant factor of it; a
//! polling payload is decoded lazily, one packet at a time.
//!
//! ```
//! use switchboard_core::engineio::{
//!     decode_payload, encode_payload, Packet, PayloadKind, PayloadLimits, ProtocolVersion,
//! };
//!
//! let v4 = ProtocolVersion::from_query("4").unwrap();
//! // A WebSocket text frame from a client.
//! assert_eq!(Packet::decode_ws_text("2probe", v4), Ok(Packet::Ping(Some("probe".into()))));
//!
//! // A polling response body.
//! let body = encode_payload(&[Packet::text("hello"), Packet::binary(vec![1, 2, 3, 4])], v4, true);
//! assert_eq!(body.as_bytes(), b"4hello\x1ebAQIDBA==");
//!
//! // A polling request body.
//! let packets: Result<Vec<Packet>, _> =
//!     decode_payload(&b"4hello\x1e2"[..], PayloadKind::Text, v4, &PayloadLimits::default())
//!         .unwrap()
//!         .collect();
//! assert_eq!(packets.unwrap(), [Packet::text("hello"), Packet::Ping(None)]);
//! ```

use std::fmt;
use std::str::FromStr;

pub mod client;
mod packet;
mod payload;
pub mod server;
mod shard;
mod sid;

pub use crate::ws::Text;
pub use client::{
    Client, ClientCloseReason, ClientConfig, ClientError, ClientEvent, ClientSendError,
    ClientTransmit, ConfigError, HttpMethod, HttpRequest, RequestId, WsConnect,
};
pub use packet::{DecodeError, MessageData, OpenPacket, PROBE, Packet, PacketType};
pub use payload::{
    EncodedPayload, PayloadDecoder, PayloadKind, PayloadLimits, RECORD_SEPARATOR, decode_payload,
    encode_payload,
};
pub use server::{
    AllowRequest, AllowedOrigins, CloseReason, ConnId, Cors, HttpResponse, PollId, RequestOutcome,
    SendError, Server, ServerConfig, ServerEvent, Transmit, TransportKind,
};
pub use shard::{MAX_SHARDS, Shard};
pub use sid::new_sid;

/// The revision of the Engine.IO protocol a peer speaks.
///
/// Revision 4 is spoken by Socket.IO v3 and later (engine.io-client v4+),
/// revision 3 by Socket.IO v1 and v2. They differ in the heartbeat direction
/// (v4: the server pings; v3: the client pings), in how binary messages are
/// framed, and in the polling payload format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProtocolVersion {
    /// Revision 3 (`EIO=3`).
    V3,
    /// Revision 4 (`EIO=4`).
    V4,
}

impl ProtocolVersion {
    /// Reads the value of the `EIO` query parameter: `"3"` or `"4"`.
    ///
    /// Anything else (including an empty value) is refused. Node's engine.io
    /// takes any value other than `"4"` as revision 3; this is stricter, so a
    /// server answers a missing or unknown version with an error (Engine.IO
    /// error code 5, "Unsupported protocol version", HTTP 400).
    ///
    /// ```
    /// use switchboard_core::engineio::ProtocolVersion;
    /// assert_eq!(ProtocolVersion::from_query("4"), Ok(ProtocolVersion::V4));
    /// assert_eq!(ProtocolVersion::from_query("3"), Ok(ProtocolVersion::V3));
    /// assert!(ProtocolVersion::from_query("5").is_err());
    /// ```
    pub fn from_query(value: &str) -> Result<Self, UnsupportedVersion> {
        match value {
            "3" => Ok(ProtocolVersion::V3),
            "4" => Ok(ProtocolVersion::V4),
            _ => Err(UnsupportedVersion),
        }
    }

    /// The value of the `EIO` query parameter for this revision.
    pub const fn as_str(self) -> &'static str {
        match self {
            ProtocolVersion::V3 => "3",
            ProtocolVersion::V4 => "4",
        }
    }
}

impl FromStr for ProtocolVersion {
    type Err = UnsupportedVersion;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ProtocolVersion::from_query(s)
    }
}

impl fmt::Display for ProtocolVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `EIO` query value named no protocol revision this crate speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unsupported Engine.IO protocol version")]
pub struct UnsupportedVersion;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_version_from_query() {
        assert_eq!("3".parse(), Ok(ProtocolVersion::V3));
        assert_eq!("4".parse(), Ok(ProtocolVersion::V4));
        for bad in ["", "2", "5", " 4", "4 ", "04", "v4", "44", "٤"] {
            assert_eq!(
                ProtocolVersion::from_query(bad),
                Err(UnsupportedVersion),
                "{bad:?}"
            );
        }
        assert_eq!(ProtocolVersion::V3.to_string(), "3");
        assert_eq!(ProtocolVersion::V4.as_str(), "4");
    }
}
