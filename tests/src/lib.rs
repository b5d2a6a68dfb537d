//! Switchboard's conformance suite: cases written once and run on every
//! runtime (tokio, smol, async-std, threads), the byte-level peers they use,
//! and the servers `conformance-server` runs.
//!
//! - [`runtime`]: the runtimes under test, and starting a server on one.
//! - [`client`]: a blocking handle on a Switchboard client running on any
//!   runtime, so a case can drive it without caring which.
//! - [`raw`]: hand-rolled RFC 6455 peers (client and server) over blocking
//!   sockets, to send exactly the bytes a case needs and read exactly what
//!   comes back.
//! - [`ws_cases`]: the WebSocket cases.
//! - [`eio_cases`]: the Engine.IO server cases, over raw HTTP and WebSocket.
//! - [`peers`]: locating the external peers (Node, Python) for interop tests.
//! - [`eio_client`]: a blocking handle on our Engine.IO client on any runtime.
//! - [`server_process`]: running `conformance-server` as a child process.
//! - [`sio_server`]: the contract's Socket.IO handlers, on every runtime.
//! - [`sio_cases`]: the Socket.IO server cases, over raw HTTP and WebSocket.

#![warn(missing_docs)]

pub mod client;
pub mod eio_cases;
pub mod eio_client;
pub mod peers;
pub mod raw;
pub mod runtime;
pub mod server_process;
pub mod sio_cases;
pub mod sio_client;
pub mod sio_server;
pub mod ws_cases;

pub use runtime::RuntimeKind;
