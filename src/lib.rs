//! Switchboard: WebSocket (and, as the layers land, Engine.IO and Socket.IO)
//! for Rust, server and client, on the runtime of your choice.
//!
//! Pick runtimes with Cargo features; each lives in its own module, so
//! several can be enabled at once:
//!
//! | feature | module | model |
//! | --- | --- | --- |
//! | `tokio` (default) | [`tokio`] | tokio's scheduler |
//! | `smol` | [`smol`] | smol's executor; also async-std apps |
//! | `threads` | [`threads`] | blocking `std::net`, a thread per connection |
//!
//! The protocol state machines are in [`core`], shared by all of them.

pub use switchboard_core as core;

/// Switchboard on tokio.
#[cfg(feature = "tokio")]
pub use switchboard_tokio as tokio;

/// Switchboard on smol and async-std.
#[cfg(feature = "smol")]
pub use switchboard_smol as smol;

/// Switchboard on OS threads.
#[cfg(feature = "threads")]
pub use switchboard_threads as threads;

/// The README's examples, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
