//! The WebSocket error type of every adapter (the threads adapter's too).

use std::io;

use switchboard_core::http::HttpError;
use switchboard_core::ws::handshake::{HandshakeError, Rejection};
use switchboard_core::ws::{ProtocolError, SendError};

/// Anything that can go wrong on a WebSocket, on any runtime.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The transport failed.
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
    /// The peer broke the protocol or a limit; the connection was failed with
    /// the matching close code.
    #[error("protocol error: {0}")]
    Protocol(#[from] ProtocolError),
    /// A message could not be sent.
    #[error(transparent)]
    Send(#[from] SendError),
    /// The client's opening handshake failed.
    #[error("handshake failed: {0}")]
    Handshake(#[from] HandshakeError),
    /// The server refused the client's opening handshake (and answered it
    /// with this status).
    #[error("handshake refused: {0}")]
    Rejected(#[from] Rejection),
    /// The opening handshake did not finish within the configured timeout.
    #[error("handshake timed out")]
    HandshakeTimeout,
    /// The connection is closed.
    #[error("connection closed")]
    Closed,
}

impl From<HttpError> for Error {
    fn from(error: HttpError) -> Self {
        Error::Rejected(error.into())
    }
}
