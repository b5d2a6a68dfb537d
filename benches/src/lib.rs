//! Benchmarks of Switchboard against named peers (tungstenite /
//! tokio-tungstenite and fastwebsockets; engineioxide for Engine.IO),
//! measured in the same run.
//!
//! - `benches/decode.rs` (criterion): decoding and unmasking client frames
//!   as a server receives them, against a `memcpy` of the same bytes.
//! - `src/bin/loadgen.rs`: echo throughput, server CPU per message and idle
//!   memory per connection over loopback, each server in its own child
//!   process; for WebSocket servers, and (`loadgen eio`, `loadgen
//!   eio-idle`) for Engine.IO servers against engineioxide.
//!
//! This library holds what both share: building client frames, in-memory
//! streams, the echo servers under test, the load client, and `/proc`
//! readings. See `BENCHMARKS.md` at the repository root for the commands and
//! the figures.

#![warn(missing_docs)]

pub mod client;
pub mod eio_client;
pub mod eio_servers;
pub mod frames;
pub mod hub;
pub mod mem;
pub mod procfs;
pub mod servers;
pub mod sio_bench;
