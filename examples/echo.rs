//! The Socket.IO echo: every `echo` event is acknowledged with its
//! arguments, binary included, and every `message` comes back as
//! `message-back`. The same handlers run on whichever runtime the Cargo
//! feature picks.
//!
//! ```sh
//! cargo run --example echo                                        # tokio
//! cargo run --example echo --no-default-features --features smol  # smol
//! cargo run --example echo --no-default-features --features threads
//! ```
//!
//! Then, from Node: `io("http://127.0.0.1:3001").emitWithAck("echo", "hi")`.

use switchboard::socketio::{SocketIo, SocketIoConfig};

/// The echo server's handlers.
pub fn echo_server() -> SocketIo {
    let io = SocketIo::new(SocketIoConfig::default());
    io.ns("/", |socket| {
        socket.on("echo", |_, mut event| {
            if let Some(ack) = event.take_ack() {
                let _ = ack.send(&event.payload());
            }
        });
        socket.on("message", |socket, event| {
            let _ = socket.emit("message-back", &event.payload());
        });
    });
    io
}

#[cfg(any(feature = "tokio", feature = "smol", feature = "threads"))]
#[allow(dead_code)]
fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:3001".into());
    println!("Socket.IO echo on http://{addr}/socket.io/");
    switchboard::serve(addr, echo_server())
}

#[cfg(not(any(feature = "tokio", feature = "smol", feature = "threads")))]
#[allow(dead_code)]
fn main() {
    eprintln!("the echo example needs a runtime: --features tokio, smol or threads");
    std::process::exit(2);
}
