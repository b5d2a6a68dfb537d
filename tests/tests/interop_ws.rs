//! WebSocket interop with independent peers, both directions, on every
//! runtime: Node `ws`, python `websockets`, and async-tungstenite.

use std::process::Command;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use switchboard_conformance::RuntimeKind;
use switchboard_conformance::client::{Received, TestClient};
use switchboard_conformance::peers::{self, PeerProcess, run_peer};
use switchboard_conformance::runtime::{conformance_config, spawn_ws_echo};
use switchboard_core::ws::{CloseFrame, Config, Message};

const T: Duration = Duration::from_secs(10);

fn node_client_against_our_server(rt: RuntimeKind) {
    if !peers::require(peers::node_ready(), "node + the ws package") {
        return;
    }
    let addr = spawn_ws_echo(rt, conformance_config());
    for extra in [&[][..], &["--deflate"][..]] {
        let mut cmd = Command::new("node");
        cmd.arg(peers::interop_dir().join("ws-client.mjs"))
            .arg(format!("ws://{addr}/"))
            .args(extra);
        let (ok, output) = run_peer(cmd, Duration::from_secs(60));
        assert!(ok, "ws client {extra:?} against {rt}:\n{output}");
        assert!(output.contains(" 0 failed"), "{output}");
    }
}

fn python_client_against_our_server(rt: RuntimeKind) {
    if !peers::require(peers::python().exists(), "the peers' Python venv") {
        return;
    }
    let addr = spawn_ws_echo(rt, conformance_config());
    let mut cmd = Command::new(peers::python());
    cmd.arg(peers::interop_dir().join("websockets_client.py"))
        .arg(format!("ws://{addr}/"));
    let (ok, output) = run_peer(cmd, Duration::from_secs(60));
    assert!(ok, "websockets client against {rt}:\n{output}");
    assert!(output.contains("ok deflate-negotiated"), "{output}");
}

fn our_client_against_node_server(rt: RuntimeKind) {
    if !peers::require(peers::node_ready(), "node + the ws package") {
        return;
    }
    let server = PeerProcess::spawn_node("ws-server.mjs", &["--port", "0"]);
    let url = format!("ws://127.0.0.1:{}/", server.port);
    let mut client = TestClient::connect(rt, &url, Config::default()).expect("connect to ws");
    let big: Vec<u8> = (0..(1 << 20)).map(|i| (i * 7 % 256) as u8).collect();
    let text = "switchboard ↔ ws ".repeat(5000);
    for message in [
        Message::text("hello"),
        Message::binary(big),
        Message::text(text),
        Message::binary(Vec::new()),
    ] {
        client.send(message.clone()).expect("send");
        assert_eq!(client.recv_data(T), Received::Message(message));
    }
    client
        .send(Message::Close(Some(CloseFrame::new(4001u16, "bye"))))
        .expect("close");
    match client.recv_data(T) {
        Received::Message(Message::Close(Some(frame))) => assert_eq!(frame.code.0, 4001),
        other => panic!("expected the close echo, got {other:?}"),
    }
    assert_eq!(client.recv(T), Received::End);
}

macro_rules! per_runtime {
    ($($module:ident => $kind:expr),* $(,)?) => {
        $(
            mod $module {
                use super::*;
                #[test]
                fn node_ws_client_against_our_server() {
                    super::node_client_against_our_server($kind)
                }
                #[test]
                fn python_websockets_client_against_our_server() {
                    super::python_client_against_our_server($kind)
                }
                #[test]
                fn our_client_against_node_ws_server() {
                    super::our_client_against_node_server($kind)
                }
                #[test]
                fn async_tungstenite_client_against_our_server() {
                    super::tungstenite_client_against_our_server($kind)
                }
                #[test]
                fn our_client_against_async_tungstenite_server() {
                    super::our_client_against_tungstenite_server($kind)
                }
            }
        )*
    };
}

per_runtime!(
    tokio => RuntimeKind::Tokio,
    smol => RuntimeKind::Smol,
    async_std => RuntimeKind::AsyncStd,
    threads => RuntimeKind::Threads,
);

type TMessage = async_tungstenite::tungstenite::Message;

/// async-tungstenite's client (on tokio, and on async-std) against our echo.
fn tungstenite_client_against_our_server(rt: RuntimeKind) {
    let addr = spawn_ws_echo(rt, conformance_config());
    let url = format!("ws://{addr}/");
    if rt == RuntimeKind::AsyncStd {
        ::async_std::task::block_on(async {
            let (ws, _) = async_tungstenite::async_std::connect_async(url)
                .await
                .expect("connect");
            tungstenite_exchange(ws).await
        });
    } else {
        ::tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async {
                let (ws, _) = async_tungstenite::tokio::connect_async(url)
                    .await
                    .expect("connect");
                tungstenite_exchange(ws).await
            });
    }
}

async fn tungstenite_exchange<W>(mut ws: W)
where
    W: futures_util::Stream<Item = Result<TMessage, async_tungstenite::tungstenite::Error>>
        + futures_util::Sink<TMessage, Error = async_tungstenite::tungstenite::Error>
        + Unpin,
{
    let payloads = vec![
        TMessage::text("hi"),
        TMessage::binary(vec![1u8; 70_000]),
        TMessage::text("é".repeat(40_000)),
    ];
    for message in payloads {
        ws.send(message.clone()).await.expect("send");
        let echoed = ws.next().await.expect("echo").expect("ok");
        assert_eq!(echoed, message);
    }
    ws.close().await.expect("close");
    while let Some(Ok(_)) = ws.next().await {}
}

/// Our client against an async-tungstenite echo server: on tokio for the
/// tokio and threads clients, on async-std for the smol and async-std ones.
fn our_client_against_tungstenite_server(rt: RuntimeKind) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    if matches!(rt, RuntimeKind::Smol | RuntimeKind::AsyncStd) {
        std::thread::spawn(move || {
            ::async_std::task::block_on(async move {
                let listener = ::async_std::net::TcpListener::from(listener);
                loop {
                    let (stream, _) = listener.accept().await.unwrap();
                    ::async_std::task::spawn(async move {
                        let ws = async_tungstenite::accept_async(stream)
                            .await
                            .expect("accept");
                        tungstenite_echo(ws).await
                    });
                }
            })
        });
    } else {
        std::thread::spawn(move || {
            ::tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async move {
                    listener.set_nonblocking(true).unwrap();
                    let listener = ::tokio::net::TcpListener::from_std(listener).unwrap();
                    loop {
                        let (stream, _) = listener.accept().await.unwrap();
                        ::tokio::spawn(async move {
                            let ws = async_tungstenite::tokio::accept_async(stream)
                                .await
                                .expect("accept");
                            tungstenite_echo(ws).await
                        });
                    }
                })
        });
    }
    let mut client =
        TestClient::connect(rt, &format!("ws://{addr}/"), Config::default()).expect("connect");
    for message in [
        Message::text("hi"),
        Message::binary(vec![9u8; 200_000]),
        Message::text("ü".repeat(70_000)),
    ] {
        client.send(message.clone()).expect("send");
        assert_eq!(client.recv_data(T), Received::Message(message));
    }
    client.send(Message::Close(None)).expect("close");
    assert!(matches!(
        client.recv_data(T),
        Received::Message(Message::Close(_))
    ));
    assert_eq!(client.recv(T), Received::End);
}

async fn tungstenite_echo<W>(mut ws: W)
where
    W: futures_util::Stream<Item = Result<TMessage, async_tungstenite::tungstenite::Error>>
        + futures_util::Sink<TMessage, Error = async_tungstenite::tungstenite::Error>
        + Unpin,
{
    while let Some(Ok(message)) = ws.next().await {
        if (message.is_text() || message.is_binary()) && ws.send(message).await.is_err() {
            break;
        }
    }
}
