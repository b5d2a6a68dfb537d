//! The async driver shared by Switchboard's tokio and smol adapters.
//!
//! It moves bytes between any `futures` [`AsyncRead`](futures_io::AsyncRead)
//! and [`AsyncWrite`](futures_io::AsyncWrite) stream and the sans-IO state
//! machines of `switchboard-core`, and time between a [`Runtime`]'s timers and
//! the core's deadlines. It holds no protocol rule: every decision about bytes
//! is the core's. A runtime crate supplies only a [`Runtime`]: spawning,
//! sleeping, TCP connect and accept (in the spirit of quinn's `Runtime`
//! trait and python-engineio's async drivers).

#![warn(missing_docs)]

pub mod accept;
mod dispatch;
pub mod engineio;
mod error;
mod io;
mod runtime;
pub mod server;
pub mod socketio;
#[cfg(test)]
mod testing;
pub mod timer;
pub mod ws;

pub use error::Error;
pub use runtime::Runtime;
