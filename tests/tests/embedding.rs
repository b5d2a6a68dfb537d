//! Embedding Switchboard in applications that own their server (issue #5):
//! the examples `examples/axum.rs`, `smol_embed.rs`, `async_std_embed.rs`
//! and `threads_embed.rs`, included here as modules and started in-process
//! on port 0.
//!
//! For each: the app's own REST route still answers; a Socket.IO client
//! (our Engine.IO client speaking Socket.IO packets, over polling and over
//! WebSocket) exchanges an event, joins a room, and receives at once what a
//! REST handler emits to that room; the plain WebSocket echo answers. For
//! axum also: the official Node `socket.io-client` (polling, websocket, and
//! polling upgraded to websocket), a held poll whose client goes away, the
//! layer as a service of its own on a plain hyper 1.x server (404, 413,
//! WebSocket upgrade), under a path prefix, and a graceful shutdown with
//! held polls. For smol also: a client that stops mid-request is let go.

#[allow(dead_code)]
#[path = "../../examples/axum.rs"]
mod axum_app;

#[allow(dead_code)]
#[path = "../../examples/smol_embed.rs"]
mod smol_app;

#[allow(dead_code)]
#[path = "../../examples/async_std_embed.rs"]
mod async_std_app;

#[allow(dead_code)]
#[path = "../../examples/threads_embed.rs"]
mod threads_app;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use switchboard_conformance::peers;
use switchboard_tokio::Tokio;
use switchboard_tokio::engineio::{ClientConfig, EngineIoClient, MessageData};
use switchboard_tokio::socketio::{SocketIo, SocketIoConfig};
use switchboard_tokio::ws;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TIMEOUT: Duration = Duration::from_secs(10);
/// What "at once" means for an emit from a REST handler: far below any
/// poll or heartbeat cycle (25 s), with room for a loaded CI machine.
const AT_ONCE: Duration = Duration::from_secs(1);

fn client_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn bind() -> (std::net::TcpListener, SocketAddr) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address");
    (listener, addr)
}

/// The axum example's app, served by `axum::serve` on a runtime of its own.
fn start_axum(io: SocketIo) -> SocketAddr {
    let (listener, addr) = bind();
    std::thread::spawn(move || {
        let rt = client_runtime();
        rt.block_on(async move {
            listener.set_nonblocking(true).expect("non-blocking");
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            axum::serve(listener, axum_app::app(io))
                .await
                .expect("serve");
        });
    });
    addr
}

fn start_smol() -> SocketAddr {
    let (listener, addr) = bind();
    std::thread::spawn(move || {
        smol::block_on(async move {
            let listener = async_net::TcpListener::try_from(listener).expect("listener");
            smol_app::run(listener, smol_app::socket_io()).await;
        });
    });
    addr
}

fn start_async_std() -> SocketAddr {
    let (listener, addr) = bind();
    std::thread::spawn(move || {
        async_std::task::block_on(async move {
            let listener = async_std::net::TcpListener::from(listener);
            async_std_app::run(listener, async_std_app::socket_io()).await;
        });
    });
    addr
}

fn start_threads() -> SocketAddr {
    let (listener, addr) = bind();
    std::thread::spawn(move || threads_app::run(listener, threads_app::socket_io()));
    addr
}

/// One HTTP/1.1 request on a fresh connection: the status and the body.
async fn http(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: text/plain\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = Vec::new();
    tokio::time::timeout(TIMEOUT, stream.read_to_end(&mut response))
        .await
        .expect("response in time")
        .expect("read");
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    (status, body)
}

#[derive(Debug, Clone, Copy)]
enum Transport {
    Polling,
    WebSocket,
    /// Polling, then the upgrade to WebSocket.
    Upgrade,
}

/// A Socket.IO client on the default namespace: our Engine.IO client,
/// speaking Socket.IO packets as text.
struct Sio {
    client: EngineIoClient,
}

impl Sio {
    async fn connect(addr: SocketAddr, transport: Transport) -> Sio {
        let mut config =
            ClientConfig::from_url(&format!("http://{addr}/socket.io/")).expect("config");
        match transport {
            Transport::Polling => config.websocket = false,
            Transport::WebSocket => config.polling = false,
            Transport::Upgrade => {}
        }
        let client = tokio::time::timeout(TIMEOUT, EngineIoClient::connect(Tokio, config))
            .await
            .expect("connected in time")
            .expect("Engine.IO connect");
        let mut sio = Sio { client };
        sio.send("0");
        let connected = sio.recv().await;
        assert!(
            connected.starts_with("0{\"sid\":"),
            "CONNECT answered {connected:?}"
        );
        sio
    }

    fn send(&self, packet: &str) {
        self.client
            .send(MessageData::Text(packet.to_owned().into()))
            .expect("send");
    }

    async fn recv(&mut self) -> String {
        match tokio::time::timeout(TIMEOUT, self.client.recv_message()).await {
            Ok(Some(MessageData::Text(text))) => text.as_str().to_owned(),
            Ok(Some(other)) => panic!("unexpected message {other:?}"),
            Ok(None) => panic!("the session closed"),
            Err(_) => panic!("no message within {TIMEOUT:?}"),
        }
    }
}

/// The app's health route answers; a client exchanges an event, joins a
/// room, and gets at once what the REST route emits to it; the WebSocket
/// echo answers.
async fn scenario(addr: SocketAddr, transport: Transport) {
    assert_eq!(
        http(addr, "GET", "/api/health", "").await,
        (200, "ok".into())
    );
    let mut sio = Sio::connect(addr, transport).await;
    sio.send(r#"2["echo",{"n":1}]"#);
    assert_eq!(sio.recv().await, r#"2["echo",{"n":1}]"#);
    sio.send(r#"20["join","lobby"]"#);
    assert_eq!(sio.recv().await, r#"30["lobby"]"#);
    let started = Instant::now();
    let answer = http(addr, "POST", "/api/rooms/lobby/announce", "hello").await;
    assert_eq!(answer, (200, "1".into()), "one client in the room");
    assert_eq!(sio.recv().await, r#"2["announce","hello"]"#);
    let elapsed = started.elapsed();
    assert!(
        elapsed < AT_ONCE,
        "the emit took {elapsed:?} ({transport:?})"
    );
    assert_eq!(
        http(addr, "POST", "/api/rooms/empty/announce", "x").await,
        (200, "0".into())
    );
    sio.client.close().await;

    let mut echo = ws::connect(&format!("ws://{addr}/ws"))
        .await
        .expect("WebSocket route");
    echo.send(ws::Message::text("ping")).await.expect("send");
    let back = tokio::time::timeout(TIMEOUT, echo.recv())
        .await
        .expect("echo in time");
    assert_eq!(
        back.expect("open").expect("message"),
        ws::Message::text("ping")
    );
}

fn run_scenarios(addr: SocketAddr) {
    client_runtime().block_on(async {
        for transport in [Transport::Polling, Transport::WebSocket, Transport::Upgrade] {
            scenario(addr, transport).await;
        }
    });
}

#[test]
fn axum_app_serves_rest_and_socketio_on_one_listener() {
    run_scenarios(start_axum(axum_app::socket_io()));
}

#[test]
fn smol_app_hands_parsed_requests_to_switchboard() {
    run_scenarios(start_smol());
}

#[test]
fn async_std_app_hands_connections_to_switchboard() {
    run_scenarios(start_async_std());
}

#[test]
fn threads_app_hands_connections_to_switchboard() {
    run_scenarios(start_threads());
}

/// The official Node client against the axum app, on each transport: it
/// joins a room, the test posts to the REST route, the client prints the
/// announce it got.
const NODE_CLIENT: &str = r#"
import { io } from 'socket.io-client';
const transports = process.env.SB_TRANSPORTS.split(',');
const socket = io(process.env.SB_URL, { transports, reconnection: false, timeout: 5000 });
const say = (event, extra) => console.log(JSON.stringify({ event, ...extra }));
const transport = () => socket.io.engine.transport.name;
setTimeout(() => { say('timeout'); process.exit(1); }, 15000);
socket.on('connect_error', (err) => { say('connect_error', { message: err.message }); process.exit(1); });
socket.on('announce', (text) => {
  say('announce', { text, transport: transport() });
  socket.close();
  process.exit(0);
});
const join = async () => {
  const room = await socket.emitWithAck('join', process.env.SB_ROOM);
  say('joined', { room, transport: transport() });
};
socket.on('connect', () => {
  if (transports.length > 1 && transport() !== 'websocket') {
    socket.io.engine.once('upgrade', join);
  } else {
    join();
  }
});
"#;

#[test]
fn node_socketio_client_gets_emits_from_an_axum_route() {
    let ready = peers::node_ready()
        && peers::interop_dir()
            .join("node_modules")
            .join("socket.io-client")
            .exists();
    if !peers::require(ready, "node and socket.io-client") {
        return;
    }
    let addr = start_axum(axum_app::socket_io());
    let rt = client_runtime();
    for (transports, expected) in [
        ("polling", "polling"),
        ("websocket", "websocket"),
        ("polling,websocket", "websocket"),
    ] {
        let mut child = Command::new("node")
            .args(["--input-type=module", "-e", NODE_CLIENT])
            .current_dir(peers::interop_dir())
            .env("SB_URL", format!("http://{addr}"))
            .env("SB_TRANSPORTS", transports)
            // A room per run: the previous client may still be leaving.
            .env("SB_ROOM", format!("room-{transports}"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn node");
        let (tx, rx) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let value: serde_json::Value = serde_json::from_str(&line)
                    .unwrap_or_else(|_| serde_json::json!({ "event": "output", "line": line }));
                if tx.send(value).is_err() {
                    return;
                }
            }
        });
        let next = || {
            rx.recv_timeout(Duration::from_secs(20))
                .expect("node output")
        };
        let joined = next();
        assert_eq!(joined["event"], "joined", "{transports}: {joined}");
        assert_eq!(joined["room"], format!("room-{transports}"));
        assert_eq!(joined["transport"], expected, "{transports}: {joined}");
        let started = Instant::now();
        let path = format!("/api/rooms/room-{transports}/announce");
        let answer = rt.block_on(http(addr, "POST", &path, "hi node"));
        assert_eq!(answer, (200, "1".into()), "{transports}");
        let announce = next();
        let elapsed = started.elapsed();
        assert_eq!(announce["event"], "announce", "{transports}: {announce}");
        assert_eq!(announce["text"], "hi node");
        assert_eq!(announce["transport"], expected);
        assert!(elapsed < AT_ONCE, "{transports}: the emit took {elapsed:?}");
        let status = child.wait().expect("node exit");
        assert!(status.success(), "{transports}: node exited with {status}");
    }
    assert_eq!(
        rt.block_on(http(addr, "GET", "/api/health", "")),
        (200, "ok".into())
    );
}

/// A held poll whose client goes away: hyper drops the response future,
/// the layer reports the poll aborted, and the session closes (rather than
/// lingering until the heartbeat gives up on it).
#[test]
fn dropped_held_poll_closes_the_session() {
    let io = axum_app::socket_io();
    let addr = start_axum(io.clone());
    client_runtime().block_on(async {
        let (status, open) = http(addr, "GET", "/socket.io/?EIO=4&transport=polling", "").await;
        assert_eq!(status, 200, "{open}");
        let sid = open
            .split("\"sid\":\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .expect("sid")
            .to_owned();
        assert_eq!(io.engine().session_count(), 1);
        let mut poll = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let request = format!(
            "GET /socket.io/?EIO=4&transport=polling&sid={sid} HTTP/1.1\r\nHost: {addr}\r\n\r\n"
        );
        poll.write_all(request.as_bytes()).await.expect("write");
        // Held: nothing to send yet.
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout(Duration::from_millis(300), poll.read(&mut buf)).await;
        assert!(read.is_err(), "the poll was answered at once: {read:?}");
        drop(poll);
        let deadline = Instant::now() + Duration::from_secs(5);
        while io.engine().session_count() != 0 {
            assert!(
                Instant::now() < deadline,
                "the session outlived its dropped poll"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
}

/// The layer as a service of its own on a plain hyper 1.x server: 404 for
/// other paths, the core's 413 for an oversized polling body, WebSocket
/// routes upgraded through hyper, Socket.IO over polling and WebSocket.
#[test]
fn service_on_a_plain_hyper_server() {
    use hyper_util::service::TowerToHyperService;
    use switchboard_tokio::engineio::ServerConfig;
    use switchboard_tokio::tower::SwitchboardLayer;

    let rt = client_runtime();
    let (listener, addr) = bind();
    let io = SocketIo::new(SocketIoConfig {
        engine: ServerConfig {
            max_payload: 1000,
            ..ServerConfig::default()
        },
        ..SocketIoConfig::default()
    });
    io.ns("/", |socket| {
        socket.on("echo", |socket, event| {
            if let Ok(value) = event.arg::<serde_json::Value>(0) {
                let _ = socket.emit("echo", &value);
            }
        });
    });
    rt.spawn(async move {
        let service = SwitchboardLayer::new()
            .socketio("/socket.io/", &io)
            .websocket("/ws", ws::echo)
            .into_service();
        listener.set_nonblocking(true).expect("non-blocking");
        let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
        loop {
            let (stream, _) = listener.accept().await.expect("accept");
            let service = TowerToHyperService::new(service.clone());
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .with_upgrades()
                    .await;
            });
        }
    });
    rt.block_on(async {
        assert_eq!(http(addr, "GET", "/api/health", "").await.0, 404);
        let (status, open) = http(addr, "GET", "/socket.io/?EIO=4&transport=polling", "").await;
        assert_eq!(status, 200, "{open}");
        let sid = open
            .split("\"sid\":\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .expect("sid")
            .to_owned();
        let path = format!("/socket.io/?EIO=4&transport=polling&sid={sid}");
        let (status, body) = http(addr, "POST", &path, &"4x".repeat(600)).await;
        assert_eq!(status, 413, "{body}");
        for transport in [Transport::Polling, Transport::WebSocket, Transport::Upgrade] {
            let mut sio = Sio::connect(addr, transport).await;
            sio.send(r#"2["echo","over hyper"]"#);
            assert_eq!(sio.recv().await, r#"2["echo","over hyper"]"#);
            sio.client.close().await;
        }
        let mut echo = ws::connect(&format!("ws://{addr}/ws"))
            .await
            .expect("WebSocket route");
        echo.send(ws::Message::binary(vec![1, 2, 3]))
            .await
            .expect("send");
        let back = tokio::time::timeout(TIMEOUT, echo.recv())
            .await
            .expect("echo");
        assert_eq!(
            back.expect("open").expect("message"),
            ws::Message::binary(vec![1, 2, 3])
        );
        // A plain GET on a WebSocket route is not Switchboard's.
        assert_eq!(http(addr, "GET", "/ws", "").await.0, 404);
    });
}

/// `examples/smol_embed.rs` reads each connection's first request itself:
/// a client that sends part of it and then nothing more (and keeps the
/// connection open) must not hold that task and socket for good, as the
/// standalone server's request timeout would not.
#[test]
fn smol_app_lets_go_of_a_client_that_stops_mid_request() {
    let addr = start_smol();
    let partials = [
        "GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n",
        "POST /api/rooms/lobby/announce HTTP/1.1\r\nContent-Length: 5\r\n\r\nhi",
    ];
    client_runtime().block_on(async {
        let clients = partials.map(|partial| async move {
            let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
            stream.write_all(partial.as_bytes()).await.expect("write");
            let mut rest = Vec::new();
            let read = tokio::time::timeout(
                smol_app::REQUEST_TIMEOUT + Duration::from_secs(5),
                stream.read_to_end(&mut rest),
            )
            .await;
            assert!(
                read.is_ok(),
                "the example still holds the connection after {partial:?}"
            );
        });
        futures_util::future::join_all(clients).await;
    });
}

/// Under a prefix, as the tower module's docs say: an app nested with
/// `Router::nest_service`, or the layer's service as a nested router's
/// `fallback_service`, serves Socket.IO at `/rt/socket.io/` beside the
/// nested routes.
#[test]
fn axum_serves_the_layer_under_a_prefix() {
    use axum::Router;
    use axum::routing::get;
    use switchboard_tokio::tower::SwitchboardLayer;

    let io = axum_app::socket_io();
    let layer = SwitchboardLayer::new().socketio("/socket.io/", &io);
    let health = || Router::new().route("/api/health", get(|| async { "ok" }));
    let apps = [
        Router::new().nest_service("/rt", health().layer(layer.clone())),
        Router::new().nest("/rt", health().fallback_service(layer.into_service())),
    ];
    let rt = client_runtime();
    for app in apps {
        let (listener, addr) = bind();
        rt.spawn(async move {
            listener.set_nonblocking(true).expect("non-blocking");
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            axum::serve(listener, app).await.expect("serve");
        });
        rt.block_on(async {
            assert_eq!(
                http(addr, "GET", "/rt/api/health", "").await,
                (200, "ok".into())
            );
            let handshake = "/rt/socket.io/?EIO=4&transport=polling";
            let (status, open) = http(addr, "GET", handshake, "").await;
            assert!(status == 200 && open.starts_with(r#"0{"sid":"#), "{open}");
        });
    }
}

/// A graceful shutdown, as the tower module's docs say: a held poll keeps
/// `axum::serve` waiting until its session has something to send, and
/// disconnecting the sockets when the signal comes answers it at once
/// (rather than at the next ping, 25 s on).
#[test]
fn axum_graceful_shutdown_ends_held_polls_once_sockets_disconnect() {
    let io = axum_app::socket_io();
    let (listener, addr) = bind();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let rt = client_runtime();
    let app = axum_app::app(io.clone());
    let server = rt.spawn(async move {
        listener.set_nonblocking(true).expect("non-blocking");
        let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
        let signal = async move {
            let _ = stopped.await;
            io.of("/").disconnect();
        };
        axum::serve(listener, app)
            .with_graceful_shutdown(signal)
            .await
            .expect("serve");
    });
    rt.block_on(async {
        let _sio = Sio::connect(addr, Transport::Polling).await;
        // The client's next poll is held.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let started = Instant::now();
        stop.send(()).expect("signal");
        tokio::time::timeout(TIMEOUT, server)
            .await
            .expect("serve returns once the held poll is answered")
            .expect("server task");
        let elapsed = started.elapsed();
        assert!(elapsed < AT_ONCE, "the shutdown took {elapsed:?}");
    });
}
