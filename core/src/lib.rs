//! Sans-IO protocol state machines for Switchboard.
//!
//! Nothing in this crate performs IO, reads a clock, sleeps, spawns or locks:
//! callers feed bytes and the current time in, and poll bytes, events and
//! deadlines out. The runtime crates (`switchboard-tokio`, `switchboard-smol`,
//! `switchboard-threads`) drive these machines over real sockets.
//!
//! - [`ws`]: RFC 6455 WebSocket (opening handshake, frames, messages, close
//!   handshake, keep-alive) and RFC 7692 permessage-deflate.
//! - [`http`]: HTTP/1.1 request and response heads with size limits, used by
//!   the opening handshake.
//! - [`connections`]: the count of a server's open connections against its
//!   limit, for the adapters' accept loops.
//! - [`socketio`]: Socket.IO packets (protocol v5, and v4 for old clients)
//!   with binary attachments.
#![forbid(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub mod connections;
pub mod engineio;
pub mod http;
pub mod ids;
pub mod socketio;
pub mod ws;

/// The longest timeout kept as a deadline (a century): a longer one, up to
/// `Duration::MAX` (a way to say "never"), is held to it, so that it never
/// expires rather than overflow an `Instant`.
///
/// ```
/// use std::time::{Duration, Instant};
/// use switchboard_core::LONGEST_TIMEOUT;
///
/// let never = Instant::now() + Duration::MAX.min(LONGEST_TIMEOUT); // no panic
/// assert!(never > Instant::now() + Duration::from_secs(50 * 365 * 86_400));
/// ```
pub const LONGEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(100 * 365 * 86_400);
