//! Switchboard on plain OS threads: blocking `std::net` sockets, a thread per
//! connection, sync handlers (python-socketio's "threading" mode).
//!
//! The adapter moves bytes and time between the socket and the sans-IO core:
//! reads block with a timeout set to the core's next deadline; writes go out
//! under a lock shared with every [`ws::Sender`] clone. A deadline a sender
//! moves earlier than a waiting read's (a close started on another thread
//! arms the close timeout) is kept by one deadline thread for the process.
//!
//! ```no_run
//! use switchboard_threads::ws;
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let listener = std::net::TcpListener::bind("127.0.0.1:9001")?;
//! std::thread::spawn(move || ws::serve(listener, ws::Config::default(), ws::echo));
//! let mut client = ws::connect("ws://127.0.0.1:9001/")?;
//! client.send(ws::Message::text("hello"))?;
//! assert_eq!(client.recv().unwrap()?, ws::Message::text("hello"));
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

mod accept;
pub mod engineio;
mod pool;
pub mod ws;

pub mod socketio {
    //! Socket.IO servers: namespaces, events, acks, binary, rooms and
    //! broadcasts (the same names on every runtime). Mount a [`SocketIo`]
    //! with `Routes::socketio` and serve the routes.
    //!
    //! See [`switchboard_async::socketio`] for the whole API.

    pub use switchboard_async::socketio::*;

    /// Serves `io` at `/socket.io/` on `addr`, a thread per connection,
    /// blocking the calling thread.
    pub fn serve(addr: impl std::net::ToSocketAddrs, io: SocketIo) -> std::io::Result<()> {
        let listener = std::net::TcpListener::bind(addr)?;
        let routes = crate::engineio::Routes::new().socketio("/socket.io/", &io);
        crate::engineio::serve(listener, routes)
    }
    pub mod client;
    pub use client::{ClientBuilder, ClientSocket, SocketIoClient, Threads};
}
