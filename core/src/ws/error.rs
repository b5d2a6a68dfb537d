//! Protocol errors of the WebSocket layer, each carrying the close code it
//! answers with.

use super::CloseCode;

/// A violation of RFC 6455 (or RFC 7692) by the peer, or a local limit it
/// exceeded. The connection is failed with [`ProtocolError::close_code`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// RSV1-3 set without an extension that defines them.
    #[error("reserved bits set without a negotiated extension")]
    ReservedBits,
    /// An opcode RFC 6455 reserves (0x3-0x7, 0xB-0xF).
    #[error("reserved opcode {0:#x}")]
    ReservedOpcode(u8),
    /// A close, ping or pong frame without FIN.
    #[error("fragmented control frame")]
    FragmentedControlFrame,
    /// A control frame with a payload over 125 bytes.
    #[error("control frame payload of {0} bytes exceeds 125")]
    ControlFrameTooLong(u64),
    /// A 64-bit payload length with the most significant bit set.
    #[error("64-bit payload length has its most significant bit set")]
    InvalidLength,
    /// A server received an unmasked frame.
    #[error("client frame is not masked")]
    UnmaskedFrame,
    /// A client received a masked frame.
    #[error("server frame is masked")]
    MaskedFrame,
    /// A continuation frame with no fragmented message in progress.
    #[error("continuation frame without a message in progress")]
    UnexpectedContinuation,
    /// A new text or binary frame while a fragmented message is in progress.
    #[error("new message started inside a fragmented message")]
    ExpectedContinuation,
    /// A text message (or fragment of one) that is not valid UTF-8.
    #[error("text message is not valid UTF-8")]
    InvalidUtf8,
    /// A close frame whose reason is not valid UTF-8.
    #[error("close reason is not valid UTF-8")]
    InvalidCloseReason,
    /// A close frame with a code that may not be sent on the wire.
    #[error("invalid close code {0}")]
    InvalidCloseCode(u16),
    /// A close frame with a one-byte payload.
    #[error("close frame payload of one byte")]
    TruncatedCloseFrame,
    /// A frame longer than the configured maximum.
    #[error("frame of {size} bytes exceeds the limit of {limit}")]
    FrameTooLarge {
        /// Payload length announced by the frame.
        size: u64,
        /// The configured limit.
        limit: usize,
    },
    /// A message longer than the configured maximum (after inflating).
    #[error("message exceeds the limit of {limit} bytes")]
    MessageTooLarge {
        /// The configured limit.
        limit: usize,
    },
    /// A message split into more fragments than allowed.
    #[error("message exceeds the limit of {limit} fragments")]
    TooManyFragments {
        /// The configured limit.
        limit: usize,
    },
    /// A compressed message that is not valid DEFLATE.
    #[error("compressed message is corrupt")]
    CorruptCompression,
    /// The peer did not answer a keep-alive ping in time.
    #[error("peer did not answer a keep-alive ping in time")]
    KeepAliveTimeout,
    /// The transport ended without a close handshake.
    #[error("connection closed without a close frame")]
    AbnormalClosure,
}

impl ProtocolError {
    /// The close code this error fails the connection with.
    ///
    /// ```
    /// use switchboard_core::ws::{CloseCode, ProtocolError};
    /// assert_eq!(ProtocolError::InvalidUtf8.close_code(), CloseCode::INVALID_PAYLOAD);
    /// ```
    pub fn close_code(&self) -> CloseCode {
        match self {
            ProtocolError::InvalidUtf8
            | ProtocolError::InvalidCloseReason
            | ProtocolError::CorruptCompression => CloseCode::INVALID_PAYLOAD,
            ProtocolError::FrameTooLarge { .. }
            | ProtocolError::MessageTooLarge { .. }
            | ProtocolError::TooManyFragments { .. } => CloseCode::MESSAGE_TOO_BIG,
            ProtocolError::KeepAliveTimeout | ProtocolError::AbnormalClosure => CloseCode::ABNORMAL,
            _ => CloseCode::PROTOCOL_ERROR,
        }
    }
}

/// Why a message could not be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The connection is closing or closed; no more data frames may be sent.
    #[error("connection is closed")]
    Closed,
    /// A ping, pong or close payload over 125 bytes.
    #[error("control frame payload of {0} bytes exceeds 125")]
    ControlFrameTooLong(usize),
    /// A close code that may not be sent.
    #[error("close code {0} may not be sent")]
    InvalidCloseCode(u16),
}
