//! Switchboard: WebSocket, Engine.IO and Socket.IO for Rust, server and
//! client, on the runtime of your choice.
//!
//! Pick runtimes with Cargo features; each lives in its own module, so
//! several can be enabled at once:
//!
//! | feature | module | model |
//! | --- | --- | --- |
//! | `tokio` (default) | [`tokio`] | tokio's scheduler |
//! | `smol` | `smol` | smol's executor; also async-std apps |
//! | `threads` | `threads` | blocking `std::net`, a thread per connection |
//! | `tower` | `tokio::tower` | mount into axum / hyper 1.x (implies `tokio`) |
//!
//! Socket.IO handlers are written once against [`socketio`] and run on
//! whichever runtime serves them: switching the feature (and nothing else)
//! moves a server built with [`serve`] to another runtime.
//!
//! ```no_run
//! use switchboard::socketio::{SocketIo, SocketIoConfig};
//!
//! fn main() -> std::io::Result<()> {
//!     let io = SocketIo::new(SocketIoConfig::default());
//!     io.ns("/", |socket| {
//!         socket.on("chat", |socket, event| {
//!             let text: String = event.arg(0).unwrap_or_default();
//!             let _ = socket.broadcast().emit("chat", &text);
//!         });
//!     });
//!     switchboard::serve("127.0.0.1:3000", io)
//! }
//! ```
//!
//! The protocol state machines are in [`core`], shared by all of them.

#![warn(missing_docs)]

pub use switchboard_core as core;

/// The byte buffer type of messages, bodies and binary attachments (the
/// `bytes` crate's).
pub use bytes::{self, Bytes};
/// JSON values, as Socket.IO payloads hold them (the `serde_json` crate).
pub use serde_json;

/// The Socket.IO server API, the same on every runtime: [`SocketIo`]
/// (`io`), [`Socket`](socketio::Socket), events, acks, rooms, broadcasts;
/// and the client, in [`socketio::client`] (its `ClientBuilder` connects
/// with a runtime's driver, such as `switchboard::tokio::Tokio`).
///
/// [`SocketIo`]: socketio::SocketIo
pub mod socketio {
    pub use switchboard_async::socketio::*;
}

/// Serves `io` at `/socket.io/` on `addr`, blocking the calling thread, on
/// the enabled runtime: tokio if its feature is on, else smol, else
/// threads. Use the runtime modules to choose explicitly or to serve more
/// routes.
///
/// On tokio this starts a runtime of its own: called from inside a tokio
/// runtime it returns an error at once rather than panic. An async app
/// awaits `switchboard::tokio::socketio::serve(addr, io)` (or
/// `tokio::engineio::serve` on a listener it bound) instead.
#[cfg(any(feature = "tokio", feature = "smol", feature = "threads"))]
pub fn serve(addr: impl std::net::ToSocketAddrs, io: socketio::SocketIo) -> std::io::Result<()> {
    #[cfg(feature = "tokio")]
    if ::tokio::runtime::Handle::try_current().is_ok() {
        return Err(std::io::Error::other(
            "switchboard::serve blocks its thread on a tokio runtime of its own, so it cannot \
             run inside one: await switchboard::tokio::socketio::serve(addr, io) instead",
        ));
    }
    let listener = std::net::TcpListener::bind(addr)?;
    #[cfg(feature = "tokio")]
    {
        let runtime = ::tokio::runtime::Runtime::new()?;
        runtime.block_on(async move {
            listener.set_nonblocking(true)?;
            let listener = ::tokio::net::TcpListener::from_std(listener)?;
            let routes = tokio::engineio::Routes::new().socketio("/socket.io/", &io);
            tokio::engineio::serve(listener, routes).await;
            Ok(())
        })
    }
    #[cfg(all(feature = "smol", not(feature = "tokio")))]
    {
        ::smol::block_on(async move {
            let listener = async_net::TcpListener::try_from(listener)?;
            let routes = smol::engineio::Routes::new().socketio("/socket.io/", &io);
            smol::engineio::serve(listener, routes).await;
            Ok(())
        })
    }
    #[cfg(all(feature = "threads", not(feature = "tokio"), not(feature = "smol")))]
    {
        let routes = threads::engineio::Routes::new().socketio("/socket.io/", &io);
        threads::engineio::serve(listener, routes)
    }
}

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

#[cfg(all(test, feature = "tokio"))]
mod tests {
    #[test]
    fn serve_inside_a_tokio_runtime_is_an_error_not_a_panic() {
        let runtime = ::tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime");
        let error = runtime
            .block_on(async {
                super::serve(
                    "127.0.0.1:0",
                    super::socketio::SocketIo::new(Default::default()),
                )
            })
            .expect_err("refused inside a runtime");
        assert!(
            error.to_string().contains("tokio::socketio::serve"),
            "{error}"
        );
    }
}
