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

#[path = "../../examples/echo.rs"]
mod echo_example;

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
