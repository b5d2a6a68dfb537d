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
