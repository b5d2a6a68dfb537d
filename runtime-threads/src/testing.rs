//! What the crate's tests of Socket.IO on threads share: a server on an
//! ephemeral port, clients on either transport, and bounded waits that
//! fail a test that hangs instead of blocking it.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::engineio::{self, Routes};
use crate::socketio::SocketIo;
use crate::socketio::client::{ClientBuilder, ClientSocket, Threads, Transport};

/// A generous bound for what should take milliseconds: reached only by a
/// hang.
pub(crate) const HANG: Duration = Duration::from_secs(30);

pub(crate) const TRANSPORTS: [Transport; 2] = [Transport::Polling, Transport::WebSocket];

/// Serves `io` on an ephemeral port; returns its URL.
pub(crate) fn serve(io: &SocketIo) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    let routes = Routes::new().socketio("/socket.io/", io);
    std::thread::spawn(move || engineio::serve(listener, routes));
    url
}

pub(crate) fn connect(url: &str, transport: Transport) -> ClientSocket {
    connect_with(ClientBuilder::new(url), transport)
}

/// Connects the client `builder` makes over `transport` only, without
/// reconnection.
pub(crate) fn connect_with(builder: ClientBuilder, transport: Transport) -> ClientSocket {
    builder
        .transports([transport])
        .reconnection(false)
        .timeout(HANG)
        .connect(Threads)
        .wait()
        .expect("connect")
}

pub(crate) fn recv<T>(rx: &mpsc::Receiver<T>, what: &str) -> T {
    rx.recv_timeout(HANG)
        .unwrap_or_else(|_| panic!("{what}: nothing within {HANG:?}"))
}

/// Runs `f` on a thread of its own; fails the test if it does not end
/// within [`HANG`].
pub(crate) fn bounded<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    recv(&rx, what)
}

pub(crate) fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + HANG;
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within {HANG:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
}
