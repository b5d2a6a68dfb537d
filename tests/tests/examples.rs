//! The Socket.IO echo example (`examples/echo.rs`), served on every
//! runtime, answering our Socket.IO client: acks carry the arguments back,
//! binary byte-exact, and `message` comes back as `message-back`.

use std::net::{SocketAddr, TcpListener};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::json;
use switchboard_async::socketio::client::{ClientBuilder, Transport};
use switchboard_conformance::RuntimeKind;
use switchboard_core::socketio::Binary;

// The example picks its `main` by the facade's runtime features, which
// this crate does not have.
#[allow(unexpected_cfgs)]
#[path = "../../examples/echo.rs"]
mod echo_example;

#[allow(dead_code)]
#[path = "../../examples/threads_embed.rs"]
mod threads_embed_example;

#[allow(dead_code)]
#[path = "../../examples/async_std_embed.rs"]
mod async_std_embed_example;

const WAIT: Duration = Duration::from_secs(10);

/// Serves the example's handlers on `runtime` in a background thread.
fn start(runtime: RuntimeKind) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let io = echo_example::echo_server();
    std::thread::spawn(move || match runtime {
        RuntimeKind::Tokio => tokio::runtime::Runtime::new()
            .expect("tokio")
            .block_on(async move {
                listener.set_nonblocking(true).expect("non-blocking");
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                let routes =
                    switchboard_tokio::engineio::Routes::new().socketio("/socket.io/", &io);
                switchboard_tokio::engineio::serve(listener, routes).await
            }),
        RuntimeKind::Smol | RuntimeKind::AsyncStd => smol::block_on(async move {
            let listener = async_net::TcpListener::try_from(listener).expect("listener");
            let routes = switchboard_smol::engineio::Routes::new().socketio("/socket.io/", &io);
            switchboard_smol::engineio::serve(listener, routes).await
        }),
        RuntimeKind::Threads => {
            let routes = switchboard_threads::engineio::Routes::new().socketio("/socket.io/", &io);
            switchboard_threads::engineio::serve(listener, routes).expect("serve")
        }
    });
    addr
}

fn echo_round_trip(runtime: RuntimeKind, transport: Transport) {
    let addr = start(runtime);
    let rt = tokio::runtime::Runtime::new().expect("tokio");
    rt.block_on(async move {
        let (tx, rx) = mpsc::channel();
        let socket = ClientBuilder::new(&format!("http://{addr}"))
            .transports([transport])
            .on("message-back", move |_, event| {
                let _ = tx.send(event.payload());
            })
            .connect(switchboard_tokio::Tokio)
            .await
            .expect("connect");
        let blob = Binary::from((0..=255u8).collect::<Vec<u8>>());
        let answer = socket
            .emit_with_ack("echo", &("hi", 7, &blob), WAIT)
            .expect("emit")
            .await
            .expect("ack");
        assert_eq!(answer.values()[..2], [json!("hi"), json!(7)]);
        assert_eq!(&answer.attachments()[0][..], &blob[..]);
        socket.emit("message", &("again",)).expect("emit");
        let back = tokio::task::spawn_blocking(move || rx.recv_timeout(WAIT))
            .await
            .expect("join")
            .expect("message-back");
        assert_eq!(back.values(), [json!("again")]);
    });
}

macro_rules! runtimes {
    ($($name:ident => $kind:expr),* $(,)?) => {$(
        mod $name {
            use super::*;
            #[test]
            fn echo_over_websocket() {
                echo_round_trip($kind, Transport::WebSocket);
            }
            #[test]
            fn echo_over_polling() {
                echo_round_trip($kind, Transport::Polling);
            }
        }
    )*};
}

runtimes!(
    on_tokio => RuntimeKind::Tokio,
    on_smol => RuntimeKind::Smol,
    on_threads => RuntimeKind::Threads,
);

/// Sends part of a request line to `addr` and goes away: the server
/// must let the connection go (not keep peeking at it for good).
fn leave_mid_line(addr: SocketAddr) {
    use std::io::{Read, Write};

    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream.write_all(b"GET /socket").expect("write");
    stream
        .shutdown(std::net::Shutdown::Write)
        .expect("shutdown");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let read = stream.read(&mut [0u8; 64]);
    assert!(
        matches!(&read, Ok(0))
            || matches!(&read, Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset),
        "the example still holds the connection: {read:?}"
    );
}

/// `examples/threads_embed.rs` peeks at a connection's request line to
/// choose who serves it: a client that sends part of a line and goes away
/// must not keep that thread peeking for good.
#[test]
fn threads_embed_lets_go_of_a_client_that_leaves_mid_line() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let io = threads_embed_example::socket_io();
    std::thread::spawn(move || threads_embed_example::run(listener, io));
    leave_mid_line(addr);
}

/// The same for `examples/async_std_embed.rs`, whose task peeks the same
/// way.
#[test]
fn async_std_embed_lets_go_of_a_client_that_leaves_mid_line() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        async_std::task::block_on(async move {
            let listener = async_std::net::TcpListener::from(listener);
            async_std_embed_example::run(listener, async_std_embed_example::socket_io()).await;
        });
    });
    leave_mid_line(addr);
}
