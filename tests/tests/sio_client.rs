//! Our Socket.IO client, on every runtime (tokio, smol, async-std,
//! threads), against the official Node `socket.io` v4 server
//! (`tests/interop/sio-server.mjs`) and against our own server (the
//! contract's `/socket.io/`, in-process on the same runtime): connect with
//! auth, echo with acks (text and binary, byte-exact), the server's
//! question answered by the client's ack, rooms and broadcasts, several
//! namespaces over one session, an auth-guarded namespace refused and
//! accepted, ack timeouts, emits buffered before the connection, server
//! and client disconnects (no reconnection), and a dropped connection
//! followed by the automatic reconnection and re-join; over WebSocket only
//! and polling only. Protocol v4 (Engine.IO v3) against Node with
//! `allowEIO3` and against ours.

use std::net::SocketAddr;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchboard_async::socketio::client::{
    AckError, ClientBuilder, ClientSocket, ConnectError, DisconnectReason, Payload, Transport,
};
use switchboard_conformance::RuntimeKind;
use switchboard_conformance::peers::{PeerProcess, interop_dir, node_ready, require};
use switchboard_conformance::runtime::{conformance_engineio_config, spawn_engineio_echo};
use switchboard_conformance::sio_client::ClientRuntime;
use switchboard_core::socketio::{Binary, ProtocolVersion};

const WAIT: Duration = Duration::from_secs(10);
const ACK: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------
// The harness.

/// Where the client connects: the Node server (kept alive by the handle)
/// or ours.
struct Target {
    addr: SocketAddr,
    _node: Option<PeerProcess>,
}

impl Target {
    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

fn node(eio3: bool) -> Option<Target> {
    let ready = node_ready() && interop_dir().join("node_modules/socket.io").exists();
    if !require(ready, "node and the socket.io package") {
        return None;
    }
    let args: &[&str] = if eio3 { &["--eio3"] } else { &[] };
    let process = PeerProcess::spawn_node("sio-server.mjs", args);
    Some(Target {
        addr: SocketAddr::from(([127, 0, 0, 1], process.port)),
        _node: Some(process),
    })
}

fn ours(runtime: RuntimeKind) -> Option<Target> {
    Some(Target {
        addr: spawn_engineio_echo(runtime, conformance_engineio_config()),
        _node: None,
    })
}

/// What a socket's handlers saw, in order.
#[derive(Debug)]
enum Seen {
    Connect(Option<String>),
    Disconnect(DisconnectReason),
    ConnectError(ConnectError),
    Event(String, Payload),
    ReconnectAttempt(u32),
    Reconnect(u32),
}

/// Registers handlers on `socket` that report everything, and answer the
/// server's `question` with its own arguments.
fn observe(socket: &ClientSocket, tx: mpsc::Sender<Seen>) {
    let seen = tx.clone();
    socket.on_connect(move |socket| {
        let _ = seen.send(Seen::Connect(socket.id()));
    });
    let seen = tx.clone();
    socket.on_disconnect(move |_, reason| {
        let _ = seen.send(Seen::Disconnect(reason));
    });
    let seen = tx.clone();
    socket.on_connect_error(move |_, error| {
        let _ = seen.send(Seen::ConnectError(error));
    });
    socket.on_any(move |_, mut event| {
        let payload = event.payload();
        if event.name() == "question" {
            if let Some(ack) = event.take_ack() {
                ack.send(&payload).expect("ack the question");
            }
        }
        let _ = tx.send(Seen::Event(event.name().to_owned(), payload));
    });
}

/// A runtime to run clients on, whose clients report what they see.
struct Harness(ClientRuntime);

impl Harness {
    fn new(kind: RuntimeKind) -> Self {
        Harness(ClientRuntime::new(kind))
    }

    /// Connects `builder` (with observing handlers), waiting for the
    /// namespace.
    fn connect(&self, builder: ClientBuilder) -> Result<Client, ConnectError> {
        let (tx, seen) = mpsc::channel();
        let io_seen = tx.clone();
        let builder = builder.setup(move |socket| {
            let io = socket.io();
            let attempts = io_seen.clone();
            io.on_reconnect_attempt(move |n| {
                let _ = attempts.send(Seen::ReconnectAttempt(n));
            });
            io.on_reconnect(move |n| {
                let _ = io_seen.send(Seen::Reconnect(n));
            });
            observe(socket, tx);
        });
        let socket = self.0.connect(builder)?;
        Ok(Client { socket, seen })
    }

    /// Makes the client without waiting for the connection.
    fn build(&self, builder: ClientBuilder) -> Client {
        let (tx, seen) = mpsc::channel();
        let builder = builder.setup(move |socket| observe(socket, tx));
        let socket = self.0.build(builder).expect("valid settings");
        Client { socket, seen }
    }
}

/// A connected socket and what its handlers saw.
struct Client {
    socket: ClientSocket,
    seen: mpsc::Receiver<Seen>,
}

impl Client {
    /// Waits for what `pick` accepts, skipping the rest (listed on
    /// failure).
    fn expect<T>(&self, what: &str, mut pick: impl FnMut(Seen) -> Result<T, Seen>) -> T {
        let deadline = Instant::now() + WAIT;
        let mut skipped = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.seen.recv_timeout(left) {
                Ok(seen) => match pick(seen) {
                    Ok(found) => return found,
                    Err(other) => skipped.push(other),
                },
                Err(_) => panic!("no {what} within {WAIT:?}; saw {skipped:?}"),
            }
        }
    }

    /// Waits for event `name`, returning its arguments.
    fn event(&self, name: &str) -> Payload {
        self.expect(&format!("event {name:?}"), |seen| match seen {
            Seen::Event(n, payload) if n == name => Ok(payload),
            other => Err(other),
        })
    }

    fn disconnect_reason(&self) -> DisconnectReason {
        self.expect("disconnect", |seen| match seen {
            Seen::Disconnect(reason) => Ok(reason),
            other => Err(other),
        })
    }

    /// Nothing but events for `quiet`: no connection, no reconnection
    /// attempt.
    fn no_reconnection(&self, quiet: Duration) {
        let deadline = Instant::now() + quiet;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.seen.recv_timeout(left) {
                Ok(seen @ (Seen::Connect(_) | Seen::ReconnectAttempt(_) | Seen::Reconnect(_))) => {
                    panic!("unexpected {seen:?}")
                }
                Ok(_) => {}
                Err(_) => return,
            }
        }
    }

    fn ask(&self, event: &str, args: &impl serde::Serialize) -> Payload {
        self.socket
            .emit_with_ack(event, args, ACK)
            .expect("emit")
            .wait()
            .unwrap_or_else(|error| panic!("no answer to {event}: {error}"))
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.socket.io().disconnect();
    }
}

fn builder(target: &Target, transports: &[Transport]) -> ClientBuilder {
    ClientBuilder::new(&target.url()).transports(transports.iter().copied())
}

const BOTH: &[Transport] = &[Transport::Polling, Transport::WebSocket];
const WEBSOCKET: &[Transport] = &[Transport::WebSocket];
const POLLING: &[Transport] = &[Transport::Polling];

/// The binary value at `value` (a placeholder) in `payload`.
fn binary_at(payload: &Payload, value: &Value) -> Vec<u8> {
    assert_eq!(value["_placeholder"], json!(true), "{value}");
    let num = value["num"].as_u64().expect("num") as usize;
    payload.attachments()[num].to_vec()
}

// ---------------------------------------------------------------------------
// The scenarios.

/// Connect with auth (the server emits it back), echo with ack (text,
/// numbers, objects, binary byte-exact), `message` → `message-back` with
/// binary, `info`, and the server's `question` answered by our ack.
fn events_and_acks(runtime: RuntimeKind, target: Target, transports: &[Transport]) {
    let harness = Harness::new(runtime);
    let auth = json!({"token": "abc", "n": 1});
    // `message-back` goes to an async handler of its own.
    let (back_tx, back_seen) = mpsc::channel();
    let client = harness
        .connect(builder(&target, transports).auth(&auth).on_async(
            "message-back",
            move |_, event| {
                let back_tx = back_tx.clone();
                async move {
                    let _ = back_tx.send(event.payload());
                }
            },
        ))
        .expect("connect");
    let sid = client.socket.id().expect("a socket id");
    assert!(client.socket.connected());
    assert_eq!(client.event("auth").values(), std::slice::from_ref(&auth));

    let answer = client.ask("echo", &("hello", 42, json!({"a": [1, null, "b"]})));
    assert_eq!(
        answer.values(),
        [json!("hello"), json!(42), json!({"a": [1, null, "b"]})]
    );
    assert!(answer.attachments().is_empty());

    let all_bytes: Vec<u8> = (0..=255).collect();
    let nested = json!({"deep": [1, 2]});
    let answer = client.ask(
        "echo",
        &(
            "bin",
            Binary::from(all_bytes.clone()),
            json!(nested),
            (
                Binary::from(Vec::<u8>::new()),
                Binary::from(vec![7u8; 100_000]),
            ),
        ),
    );
    let values = answer.values();
    assert_eq!(values.len(), 4);
    assert_eq!(values[0], "bin");
    assert_eq!(binary_at(&answer, &values[1]), all_bytes);
    assert_eq!(values[2], nested);
    assert_eq!(binary_at(&answer, &values[3][0]), Vec::<u8>::new());
    assert_eq!(binary_at(&answer, &values[3][1]), vec![7u8; 100_000]);

    client
        .socket
        .emit("message", &("m", Binary::from(vec![1u8, 2, 3])))
        .expect("emit");
    let back = back_seen.recv_timeout(WAIT).expect("message-back");
    assert_eq!(back.values()[0], "m");
    assert_eq!(binary_at(&back, &back.values()[1]), [1, 2, 3]);

    let info = client.ask("info", &());
    assert_eq!(info.values()[0]["id"], json!(sid));
    assert_eq!(info.values()[0]["nsp"], "/");
    assert_eq!(info.values()[0]["auth"], auth);

    // The server asks, our `question` handler acks, the server passes the
    // answer on as its ack of `ask`.
    let answer = client.ask("ask", &("why", 7, Binary::from(vec![9u8, 8])));
    let question = client.event("question");
    assert_eq!(question.values()[..2], [json!("why"), json!(7)]);
    assert_eq!(answer.values()[..2], [json!("why"), json!(7)]);
    assert_eq!(binary_at(&answer, &answer.values()[2]), [9, 8]);

    // The callback variant.
    let (tx, rx) = mpsc::channel();
    client
        .socket
        .emit_with_ack_callback("message-with-ack", &("cb",), ACK, move |answer| {
            let _ = tx.send(answer);
        })
        .expect("emit");
    let answer = rx.recv_timeout(WAIT).expect("callback").expect("answer");
    assert_eq!(answer.values(), [json!("cb")]);

    client.socket.disconnect();
    assert_eq!(
        client.disconnect_reason(),
        DisconnectReason::IoClientDisconnect
    );
    assert!(!client.socket.io().is_open());
}

/// `join` and `room-size` among two clients; `broadcast` reaches the other
/// one only.
fn rooms(runtime: RuntimeKind, target: Target) {
    let harness = Harness::new(runtime);
    let a = harness.connect(builder(&target, BOTH)).expect("connect a");
    // `broadcast` goes to a sync handler of its own.
    let (broadcast_tx, broadcasts) = mpsc::channel();
    let b = harness
        .connect(builder(&target, BOTH).on("broadcast", move |_, event| {
            let _ = broadcast_tx.send(event.payload());
        }))
        .expect("connect b");
    let room = format!("room-{:?}-{}", runtime, target.addr.port());
    assert_eq!(a.ask("room-size", &(&room,)).values(), [json!(0)]);
    assert_eq!(a.ask("join", &(&room,)).values(), [json!(room)]);
    assert_eq!(a.ask("room-size", &(&room,)).values(), [json!(1)]);
    b.ask("join", &(&room,));
    assert_eq!(a.ask("room-size", &(&room,)).values(), [json!(2)]);
    a.ask("broadcast", &(&room, "hi", Binary::from(vec![5u8])));
    let broadcast = broadcasts.recv_timeout(WAIT).expect("broadcast");
    assert_eq!(broadcast.values()[..2], [json!(room), json!("hi")]);
    assert_eq!(binary_at(&broadcast, &broadcast.values()[2]), [5]);
    b.ask("leave", &(&room,));
    assert_eq!(a.ask("room-size", &(&room,)).values(), [json!(1)]);
    drop(a);
    // A socket that leaves leaves its rooms.
    let deadline = Instant::now() + WAIT;
    while b.ask("room-size", &(&room,)).values() != [json!(0)] {
        assert!(Instant::now() < deadline, "the room never emptied");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `/admin` refuses without the token ("not authorized") and accepts with
/// it; `/custom` joins beside `/` on the same session, with its own auth.
fn namespaces(runtime: RuntimeKind, target: Target) {
    let harness = Harness::new(runtime);
    let refused = harness.connect(builder(&target, BOTH).namespace("/admin"));
    match refused {
        Err(ConnectError::Refused { message, .. }) => assert_eq!(message, "not authorized"),
        Err(other) => panic!("expected a refusal, got {other}"),
        Ok(_) => panic!("/admin accepted without the token"),
    }
    let refused = harness.connect(
        builder(&target, BOTH)
            .namespace("/admin")
            .auth(&json!({"token": "wrong"})),
    );
    assert!(matches!(refused, Err(ConnectError::Refused { .. })));

    let admin = harness
        .connect(
            ClientBuilder::new(&format!("{}/admin", target.url()))
                .auth(&json!({"token": "secret"})),
        )
        .expect("/admin with the token");
    assert_eq!(admin.socket.namespace(), "/admin");
    let info = admin.ask("info", &());
    assert_eq!(info.values()[0]["nsp"], "/admin");
    assert_eq!(
        admin.ask("echo", &(1, "x")).values(),
        [json!(1), json!("x")]
    );

    // More namespaces over the same session.
    let io = admin.socket.io();
    let main = io.socket("/");
    let (tx, main_seen) = mpsc::channel();
    observe(&main, tx);
    main.connect().wait().expect("/");
    let main = Client {
        socket: main,
        seen: main_seen,
    };
    assert_eq!(main.event("auth").values(), [json!({})]);
    let custom = io.socket("/custom");
    let (tx, custom_seen) = mpsc::channel();
    observe(&custom, tx);
    custom
        .connect_with_auth(&json!({"token": "abc"}))
        .expect("auth")
        .wait()
        .expect("/custom");
    let custom = Client {
        socket: custom,
        seen: custom_seen,
    };
    assert_eq!(custom.event("auth").values(), [json!({"token": "abc"})]);
    assert_eq!(custom.ask("info", &()).values()[0]["nsp"], "/custom");
    assert_eq!(main.ask("echo", &("main",)).values(), [json!("main")]);
    // A refusal on a shared session leaves the others alone.
    let admin2 = io.socket("/admin");
    assert!(admin2.connected());
    let unknown = io.socket("/nope");
    let (tx, unknown_seen) = mpsc::channel();
    observe(&unknown, tx);
    match unknown.connect().wait() {
        Err(ConnectError::Refused { message, .. }) => assert_eq!(message, "Invalid namespace"),
        other => panic!("expected Invalid namespace, got {other:?}"),
    }
    let unknown = Client {
        socket: unknown,
        seen: unknown_seen,
    };
    let error = unknown.expect("connect error", |seen| match seen {
        Seen::ConnectError(error) => Ok(error),
        other => Err(other),
    });
    assert_eq!(error.to_string(), "Invalid namespace");
    assert!(!unknown.socket.active());
    assert_eq!(custom.ask("echo", &(2,)).values(), [json!(2)]);

    // Leaving one namespace keeps the session for the others.
    custom.socket.disconnect();
    assert_eq!(
        custom.disconnect_reason(),
        DisconnectReason::IoClientDisconnect
    );
    assert!(io.is_open());
    assert_eq!(admin.ask("echo", &(3,)).values(), [json!(3)]);
}

/// An ack that does not come in time fails with a timeout (the server
/// ignores unhandled events); emits made before the connection are sent
/// once it is made.
fn timeouts_and_buffering(runtime: RuntimeKind, target: Target) {
    let harness = Harness::new(runtime);
    let client = harness.build(builder(&target, BOTH).auth(&json!({"early": true})));
    // Not connected yet: buffered.
    client
        .socket
        .emit("message", &("early", 1))
        .expect("buffered");
    let early = client
        .socket
        .emit_with_ack("echo", &("early ack",), ACK)
        .expect("buffered");
    client.expect("connect", |seen| match seen {
        Seen::Connect(id) => Ok(id),
        other => Err(other),
    });
    assert_eq!(
        client.event("message-back").values(),
        [json!("early"), json!(1)]
    );
    assert_eq!(early.wait().expect("answer").values(), [json!("early ack")]);

    let started = Instant::now();
    let timed_out = client
        .socket
        .emit_with_ack("unhandled-event", &(), Duration::from_millis(300))
        .expect("emit")
        .wait();
    assert_eq!(timed_out.unwrap_err(), AckError::Timeout);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(290) && took < Duration::from_secs(3),
        "{took:?}"
    );
}

/// `disconnect-me`: DISCONNECT from the server, `io server disconnect`,
/// and no reconnection.
fn server_disconnect(runtime: RuntimeKind, target: Target, transports: &[Transport]) {
    let harness = Harness::new(runtime);
    let client = harness
        .connect(builder(&target, transports).reconnection_delay(Duration::from_millis(100)))
        .expect("connect");
    client.event("auth");
    client.socket.emit("disconnect-me", &()).expect("emit");
    assert_eq!(
        client.disconnect_reason(),
        DisconnectReason::IoServerDisconnect
    );
    client.no_reconnection(Duration::from_millis(1500));
    assert!(!client.socket.connected());
    assert!(!client.socket.active());
    assert!(!client.socket.io().is_open());
    // The application may connect again.
    client.socket.connect().wait().expect("connect again");
    client.event("auth");
}

/// `drop-me`: the connection goes without DISCONNECT (`transport close`);
/// the client reconnects on its own (Node's default delays) and joins the
/// namespace again with its auth, buffering emits meanwhile.
fn drop_and_reconnect(runtime: RuntimeKind, target: Target, transports: &[Transport]) {
    let harness = Harness::new(runtime);
    let auth = json!({"token": "again"});
    let client = harness
        .connect(builder(&target, transports).auth(&auth))
        .expect("connect");
    let first_sid = client.socket.id().expect("sid");
    assert_eq!(client.event("auth").values(), std::slice::from_ref(&auth));
    client.socket.emit("drop-me", &()).expect("emit");
    assert_eq!(client.disconnect_reason(), DisconnectReason::TransportClose);
    // Meanwhile, emits wait.
    client
        .socket
        .emit("message", &("while away",))
        .expect("buffered");
    let attempt = client.expect("reconnect attempt", |seen| match seen {
        Seen::ReconnectAttempt(n) => Ok(n),
        other => Err(other),
    });
    assert_eq!(attempt, 1);
    client.expect("reconnect", |seen| match seen {
        Seen::Reconnect(n) => Ok(n),
        other => Err(other),
    });
    let second_sid = client.expect("connect", |seen| match seen {
        Seen::Connect(id) => Ok(id),
        other => Err(other),
    });
    assert_ne!(second_sid, Some(first_sid), "a new socket");
    assert_eq!(client.event("auth").values(), [auth]);
    assert_eq!(client.event("message-back").values(), [json!("while away")]);
    assert_eq!(client.ask("echo", &("back",)).values(), [json!("back")]);
}

/// The server goes away for good: the client keeps trying, and gives up
/// after the attempts allowed.
fn server_gone(runtime: RuntimeKind, target: Target) {
    let harness = Harness::new(runtime);
    let client = harness
        .connect(
            builder(&target, WEBSOCKET)
                .reconnection_attempts(2)
                .reconnection_delay(Duration::from_millis(50))
                .randomization_factor(0.0),
        )
        .expect("connect");
    let (failed_tx, failed) = mpsc::channel();
    client.socket.io().on_reconnect_failed(move || {
        let _ = failed_tx.send(());
    });
    drop(target);
    let reason = client.disconnect_reason();
    assert!(
        matches!(
            reason,
            DisconnectReason::TransportClose
                | DisconnectReason::TransportError
                | DisconnectReason::PingTimeout
        ),
        "{reason}"
    );
    failed.recv_timeout(WAIT).expect("reconnect_failed");
    assert!(!client.socket.active());
}

/// Protocol v4 over Engine.IO v3: `/` joined implicitly, auth as the
/// CONNECT's query, refusals as a plain string.
fn protocol_v4(runtime: RuntimeKind, target: Target, transports: &[Transport]) {
    let harness = Harness::new(runtime);
    let client = harness
        .connect(builder(&target, transports).protocol(ProtocolVersion::V4))
        .expect("connect v4");
    assert_eq!(client.event("auth").values(), [json!({})]);
    let answer = client.ask("echo", &("v4", Binary::from(vec![1u8, 2])));
    assert_eq!(answer.values()[0], "v4");
    assert_eq!(binary_at(&answer, &answer.values()[1]), [1, 2]);
    let io = client.socket.io();
    match io.socket("/admin").connect().wait() {
        Err(ConnectError::Refused { message, .. }) => assert_eq!(message, "not authorized"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    let admin = io.socket("/admin");
    admin
        .connect_with_auth(&json!({"token": "secret"}))
        .expect("auth")
        .wait()
        .expect("/admin with the token");
    let answer = admin
        .emit_with_ack("info", &(), ACK)
        .expect("emit")
        .wait()
        .expect("info");
    assert_eq!(answer.values()[0]["nsp"], "/admin");
    assert_eq!(answer.values()[0]["auth"]["token"], "secret");
}

macro_rules! case {
    ($kind:expr, $name:ident, $target:expr, $scenario:ident $(, $arg:expr)*) => {
        #[test]
        fn $name() {
            if let Some(target) = $target {
                $scenario($kind, target $(, $arg)*);
            }
        }
    };
}

macro_rules! client_cases {
    ($runtime:ident, $kind:expr) => {
        mod $runtime {
            use super::*;

            case!(
                $kind,
                node_events_websocket,
                node(false),
                events_and_acks,
                WEBSOCKET
            );
            case!(
                $kind,
                node_events_polling,
                node(false),
                events_and_acks,
                POLLING
            );
            case!(
                $kind,
                node_events_upgrade,
                node(false),
                events_and_acks,
                BOTH
            );
            case!($kind, node_rooms, node(false), rooms);
            case!($kind, node_namespaces, node(false), namespaces);
            case!(
                $kind,
                node_timeouts_and_buffering,
                node(false),
                timeouts_and_buffering
            );
            case!(
                $kind,
                node_server_disconnect_websocket,
                node(false),
                server_disconnect,
                WEBSOCKET
            );
            case!(
                $kind,
                node_server_disconnect_polling,
                node(false),
                server_disconnect,
                POLLING
            );
            case!(
                $kind,
                node_drop_websocket,
                node(false),
                drop_and_reconnect,
                WEBSOCKET
            );
            case!(
                $kind,
                node_drop_polling,
                node(false),
                drop_and_reconnect,
                POLLING
            );
            case!($kind, node_server_gone, node(false), server_gone);
            case!($kind, node_v4_websocket, node(true), protocol_v4, WEBSOCKET);
            case!($kind, node_v4_polling, node(true), protocol_v4, POLLING);

            case!(
                $kind,
                ours_events_websocket,
                ours($kind),
                events_and_acks,
                WEBSOCKET
            );
            case!(
                $kind,
                ours_events_polling,
                ours($kind),
                events_and_acks,
                POLLING
            );
            case!(
                $kind,
                ours_events_upgrade,
                ours($kind),
                events_and_acks,
                BOTH
            );
            case!($kind, ours_rooms, ours($kind), rooms);
            case!($kind, ours_namespaces, ours($kind), namespaces);
            case!(
                $kind,
                ours_timeouts_and_buffering,
                ours($kind),
                timeouts_and_buffering
            );
            case!(
                $kind,
                ours_server_disconnect_websocket,
                ours($kind),
                server_disconnect,
                WEBSOCKET
            );
            case!(
                $kind,
                ours_server_disconnect_polling,
                ours($kind),
                server_disconnect,
                POLLING
            );
            case!(
                $kind,
                ours_drop_websocket,
                ours($kind),
                drop_and_reconnect,
                WEBSOCKET
            );
            case!(
                $kind,
                ours_drop_polling,
                ours($kind),
                drop_and_reconnect,
                POLLING
            );
            case!(
                $kind,
                ours_v4_websocket,
                ours($kind),
                protocol_v4,
                WEBSOCKET
            );
            case!($kind, ours_v4_polling, ours($kind), protocol_v4, POLLING);
        }
    };
}

client_cases!(tokio, RuntimeKind::Tokio);
client_cases!(smol, RuntimeKind::Smol);
client_cases!(async_std, RuntimeKind::AsyncStd);
client_cases!(threads, RuntimeKind::Threads);
