//! Our Engine.IO client, on every runtime, against the official Node
//! `engine.io` v6 server (npm) and against our own server: polling only,
//! WebSocket only, polling then the upgrade, text and binary, order across
//! the upgrade, the heartbeat over several intervals, closing from either
//! side, protocol v3 against Node with `allowEIO3`, and a refused
//! connection reported with its cause.

use std::net::SocketAddr;
use std::time::Duration;

use switchboard_conformance::RuntimeKind;
use switchboard_conformance::eio_client::EioTestClient;
use switchboard_conformance::peers::{PeerProcess, interop_dir, node_ready, require};
use switchboard_conformance::raw::{RawConn, RawServer};
use switchboard_conformance::runtime::{conformance_engineio_config, spawn_engineio_echo};
use switchboard_core::engineio::client::{ClientCloseReason, ClientConfig, ClientEvent};
use switchboard_core::engineio::{MessageData, ProtocolVersion};

const WAIT: Duration = Duration::from_secs(10);

/// Where the client connects: the Node server (kept alive by the handle) or
/// ours.
struct Target {
    addr: SocketAddr,
    _node: Option<PeerProcess>,
}

fn node(eio3: bool) -> Option<Target> {
    let ready = node_ready() && interop_dir().join("node_modules/engine.io").exists();
    if !require(ready, "node and the engine.io package") {
        return None;
    }
    let args: &[&str] = if eio3 { &["--eio3"] } else { &[] };
    let process = PeerProcess::spawn_node("eio-server.mjs", args);
    Some(Target {
        addr: SocketAddr::from(([127, 0, 0, 1], process.port)),
        _node: Some(process),
    })
}

fn ours() -> Option<Target> {
    Some(Target {
        addr: spawn_engineio_echo(RuntimeKind::Tokio, conformance_engineio_config()),
        _node: None,
    })
}

/// An address nothing listens on (a port just freed).
fn nobody() -> Option<Target> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("its address");
    drop(listener);
    Some(Target { addr, _node: None })
}

fn config(target: &Target, polling: bool, websocket: bool) -> ClientConfig {
    let mut config =
        ClientConfig::from_url(&format!("http://{}/engine.io/", target.addr)).expect("valid url");
    config.polling = polling;
    config.websocket = websocket;
    config
}

/// Text and binary come back as sent, in order; `expect_upgrade` says
/// whether the session must have moved to WebSocket by the end.
fn echo_in_order(client: &EioTestClient, expect_upgrade: bool) {
    let mut upgraded = false;
    let count = 40;
    for i in 0..count {
        if i % 2 == 0 {
            client.send(MessageData::Text(format!("message {i}").into()));
        } else {
            client.send(MessageData::Binary(vec![i as u8, 0, 255, 7].into()));
        }
        // Spread the sends so some go before and some after the upgrade.
        std::thread::sleep(Duration::from_millis(5));
    }
    for i in 0..count {
        let expected = if i % 2 == 0 {
            MessageData::Text(format!("message {i}").into())
        } else {
            MessageData::Binary(vec![i as u8, 0, 255, 7].into())
        };
        assert_eq!(client.message(WAIT, &mut upgraded), expected, "message {i}");
    }
    if expect_upgrade && !upgraded {
        // The upgrade may land after the last echo: wait for it.
        match client.event(WAIT) {
            Some(ClientEvent::Upgraded) => upgraded = true,
            other => panic!("expected the upgrade, got {other:?}"),
        }
    }
    assert_eq!(upgraded, expect_upgrade, "upgrade");
}

fn close_from_client(client: &EioTestClient) {
    client.close();
    loop {
        match client.event(WAIT) {
            Some(ClientEvent::Closed { reason, .. }) => {
                assert_eq!(reason, ClientCloseReason::ForcedClose);
                return;
            }
            Some(_) => {}
            None => panic!("no close event"),
        }
    }
}

fn polling_only(runtime: RuntimeKind, target: Target) {
    let client = EioTestClient::connect(runtime, config(&target, true, false)).expect("connect");
    echo_in_order(&client, false);
    close_from_client(&client);
}

fn websocket_only(runtime: RuntimeKind, target: Target) {
    let client = EioTestClient::connect(runtime, config(&target, false, true)).expect("connect");
    echo_in_order(&client, false);
    close_from_client(&client);
}

/// A connection that fails says why, over either transport.
fn refused_names_its_cause(runtime: RuntimeKind, target: Target) {
    for (polling, websocket) in [(true, false), (false, true)] {
        let error = match EioTestClient::connect(runtime, config(&target, polling, websocket)) {
            Ok(_) => panic!("connected to {} where nothing listens", target.addr),
            Err(error) => error,
        };
        assert!(
            error.to_lowercase().contains("refused"),
            "polling {polling}, websocket {websocket}: {error}"
        );
    }
}

fn polling_then_upgrade(runtime: RuntimeKind, target: Target) {
    let client = EioTestClient::connect(runtime, config(&target, true, true)).expect("connect");
    echo_in_order(&client, true);
    close_from_client(&client);
}

/// pingInterval is 300 ms on both servers: two seconds is several
/// heartbeats, answered on whatever transport the session is on.
fn heartbeat_keeps_the_session(runtime: RuntimeKind, target: Target) {
    for (polling, websocket) in [(true, false), (false, true)] {
        let client =
            EioTestClient::connect(runtime, config(&target, polling, websocket)).expect("connect");
        // Nothing at all should happen while idle: no close, no message.
        if let Some(event) = client.event(Duration::from_secs(2)) {
            panic!("unexpected {event:?} while idle");
        }
        let mut upgraded = false;
        client.send(MessageData::Text("still here".into()));
        assert_eq!(
            client.message(WAIT, &mut upgraded),
            MessageData::Text("still here".into())
        );
        close_from_client(&client);
    }
}

/// The server goes away: the client reports the session closed (the
/// transport closing or failing, or the heartbeat stopping).
fn server_goes_away(runtime: RuntimeKind, first: Target) {
    let mut server = Some(first);
    for (polling, websocket) in [(true, false), (false, true)] {
        let Some(target) = server.take().or_else(|| node(false)) else {
            return;
        };
        let client =
            EioTestClient::connect(runtime, config(&target, polling, websocket)).expect("connect");
        let mut upgraded = false;
        client.send(MessageData::Text("x".into()));
        client.message(WAIT, &mut upgraded);
        drop(target);
        match client.event(WAIT) {
            Some(ClientEvent::Closed { reason, .. }) => assert!(
                matches!(
                    reason,
                    ClientCloseReason::TransportClose
                        | ClientCloseReason::TransportError
                        | ClientCloseReason::PingTimeout
                ),
                "{reason}"
            ),
            other => panic!("expected a close, got {other:?}"),
        }
    }
}

fn v3_polling_then_upgrade(runtime: RuntimeKind, target: Target) {
    let mut config = config(&target, true, true);
    config.version = ProtocolVersion::V3;
    let client = EioTestClient::connect(runtime, config).expect("connect");
    echo_in_order(&client, true);
    close_from_client(&client);
}

fn v3_polling_only(runtime: RuntimeKind, target: Target) {
    let mut config = config(&target, true, false);
    config.version = ProtocolVersion::V3;
    let client = EioTestClient::connect(runtime, config).expect("connect");
    echo_in_order(&client, false);
    close_from_client(&client);
}

/// Runs `script` on a thread of its own as the server behind the target it
/// returns, with a receiver of what the script returns when it is done.
fn scripted_server<T: Send + 'static>(
    script: impl FnOnce(RawServer) -> T + Send + 'static,
) -> (Target, std::sync::mpsc::Receiver<T>) {
    let server = RawServer::bind();
    let target = Target {
        addr: server.addr(),
        _node: None,
    };
    let (done_tx, done) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = done_tx.send(script(server));
    });
    (target, done)
}

/// Answers 200 with `body` on `conn`.
fn respond(conn: &mut RawConn, body: &[u8]) {
    let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
    conn.write(head.as_bytes());
    conn.write(body);
}

/// Accepts the client's handshake, answers it with `open`, and reads the
/// first poll on the same connection.
fn open_polling_session(server: &RawServer, open: &[u8]) -> RawConn {
    let (mut conn, _handshake) = server.accept();
    respond(&mut conn, open);
    let poll = conn.read_head(Duration::from_secs(5));
    assert!(
        poll.is_some_and(|head| head.starts_with("GET ")),
        "the first poll"
    );
    conn
}

/// An open packet for a polling-only session with a long heartbeat.
const POLLING_OPEN: &[u8] =
    br#"0{"sid":"s","upgrades":[],"pingInterval":25000,"pingTimeout":20000}"#;

/// A polling-only client connects to `target` and gets the message
/// `hello`.
fn hears_hello(runtime: RuntimeKind, target: &Target) {
    let client = EioTestClient::connect(runtime, config(target, true, false)).expect("connect");
    assert_eq!(
        client.event(WAIT),
        Some(ClientEvent::Message(MessageData::Text("hello".into())))
    );
}

/// A server that opens a polling session (100 ms heartbeat), then holds
/// the next poll and never answers: once the client gives the session up
/// (`ping timeout`), the held request's connection must be let go too,
/// within the close timeout (5 s), not left waiting for good.
fn a_silent_server_is_let_go(runtime: RuntimeKind, _target: Target) {
    let (target, released) = scripted_server(|server| {
        let open = br#"0{"sid":"s","upgrades":[],"pingInterval":100,"pingTimeout":100,"maxPayload":1000000}"#;
        let mut conn = open_polling_session(&server, open);
        conn.closed_within(Duration::from_secs(20))
    });
    let client = EioTestClient::connect(runtime, config(&target, true, false)).expect("connect");
    match client.event(WAIT) {
        Some(ClientEvent::Closed { reason, .. }) => {
            assert_eq!(reason, ClientCloseReason::PingTimeout)
        }
        other => panic!("expected the ping timeout, got {other:?}"),
    }
    assert_eq!(
        released.recv_timeout(Duration::from_secs(25)),
        Ok(true),
        "the held poll's connection is still open"
    );
}

/// A server that accepts and never answers the handshake (a hung process,
/// a proxy whose backend is gone): the connect timeout ends the attempt,
/// and the handshake's connection is let go too, so a client reconnecting
/// to it does not gain a blocked request per attempt.
fn an_unanswered_handshake_is_let_go(runtime: RuntimeKind, _target: Target) {
    let (target, released) = scripted_server(|server| {
        let (mut conn, _handshake) = server.accept();
        conn.closed_within(Duration::from_secs(20))
    });
    let mut config = config(&target, true, false);
    config.connect_timeout = Some(Duration::from_millis(200));
    match EioTestClient::connect(runtime, config) {
        Ok(_) => panic!("connected to a server that never answered"),
        Err(error) => assert!(error.contains("timed out"), "{error}"),
    }
    assert_eq!(
        released.recv_timeout(Duration::from_secs(25)),
        Ok(true),
        "the handshake's connection is still open"
    );
}

/// The server resets a keep-alive connection just as the client's next
/// request on it arrives (an idle connection closed as it is reused):
/// nothing of an answer came, so the request goes again on a new
/// connection, and the session goes on, as in a browser.
fn a_reset_reused_connection_is_retried(runtime: RuntimeKind, _target: Target) {
    let (target, done) = scripted_server(|server| {
        let mut first = open_polling_session(&server, POLLING_OPEN);
        respond(&mut first, b"6");
        // The next poll comes on the same connection: closed unread, which
        // resets it.
        first.stream.peek(&mut [0u8; 1]).expect("the next poll");
        drop(first);
        let (mut second, head) = server.accept();
        assert!(head.starts_with("GET "), "the poll again: {head}");
        respond(&mut second, b"4hello");
        second // kept open until the test ends
    });
    hears_hello(runtime, &target);
    drop(done.recv_timeout(WAIT));
}

/// An interim `1xx` answer is skipped: the request's answer is the final
/// one after it (RFC 9110 15.2).
fn an_interim_answer_is_skipped(runtime: RuntimeKind, _target: Target) {
    let (target, done) = scripted_server(|server| {
        let mut conn = open_polling_session(&server, POLLING_OPEN);
        conn.write(b"HTTP/1.1 100 Continue\r\n\r\n");
        respond(&mut conn, b"4hello");
        conn // kept open until the test ends
    });
    hears_hello(runtime, &target);
    drop(done.recv_timeout(WAIT));
}

macro_rules! client_cases {
    ($runtime:ident, $kind:expr) => {
        mod $runtime {
            use super::*;

            macro_rules! case {
                ($name:ident, $scenario:ident, $target:expr) => {
                    #[test]
                    fn $name() {
                        if let Some(target) = $target {
                            $scenario($kind, target);
                        }
                    }
                };
            }

            case!(node_polling_only, polling_only, node(false));
            case!(node_websocket_only, websocket_only, node(false));
            case!(node_polling_then_upgrade, polling_then_upgrade, node(false));
            case!(node_heartbeat, heartbeat_keeps_the_session, node(false));
            case!(node_server_goes_away, server_goes_away, node(false));
            case!(node_v3_polling_only, v3_polling_only, node(true));
            case!(
                node_v3_polling_then_upgrade,
                v3_polling_then_upgrade,
                node(true)
            );
            case!(ours_polling_only, polling_only, ours());
            case!(ours_websocket_only, websocket_only, ours());
            case!(ours_polling_then_upgrade, polling_then_upgrade, ours());
            case!(ours_heartbeat, heartbeat_keeps_the_session, ours());
            case!(refused, refused_names_its_cause, nobody());
            case!(silent_server, a_silent_server_is_let_go, nobody());
            case!(
                unanswered_handshake,
                an_unanswered_handshake_is_let_go,
                nobody()
            );
            case!(
                reset_reused_connection,
                a_reset_reused_connection_is_retried,
                nobody()
            );
            case!(interim_answer, an_interim_answer_is_skipped, nobody());
        }
    };
}

client_cases!(tokio, RuntimeKind::Tokio);
client_cases!(smol, RuntimeKind::Smol);
client_cases!(async_std, RuntimeKind::AsyncStd);
client_cases!(threads, RuntimeKind::Threads);
