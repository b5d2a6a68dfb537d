//! Socket.IO benchmark (`sio-bench`): the servers under test and a minimal
//! raw Socket.IO client that drives every one of them the same way.
//!
//! Servers, each with the same three handlers on namespace `/` and a
//! 10-minute `pingInterval` (no heartbeat inside a run):
//!
//! - `echo` with an ack: acknowledges with the arguments it got;
//! - `join` (room) with an ack: joins the room, acknowledges;
//! - `broadcast-bench` (room, n): emits `bcast` (`"x"`) n times to the room.
//!
//! - **switchboard-tokio**: `switchboard_async::socketio::SocketIo` under
//!   `switchboard_tokio::engineio::serve` (`Routes::socketio`), tokio's
//!   multi-thread runtime, one worker per core.
//! - **switchboard-smol**: the same through `switchboard_smol::engineio::
//!   serve_on`, on `conformance-server`'s smol executor (one thread per
//!   core).
//! - **socketioxide** 0.17 (engineioxide 0.17, the release line the bench
//!   crate's Engine.IO peer uses): `SocketIo::builder().build_svc()` served
//!   by hyper's HTTP/1.1 server with upgrades, TCP_NODELAY, on tokio's
//!   multi-thread runtime.
//! - **node**: `socket.io` 4.8.4 from `tests/interop/node_modules`, run by
//!   `benches/scripts/sio-server.js`.
//! - **switchboard-threads** (only when named, `--impls threads`): the same
//!   `SocketIo` under `switchboard_threads::engineio::serve`, a thread per
//!   connection and the handlers on the adapter's handler threads.
//!
//! The client speaks Socket.IO v5 over the WebSocket transport only (no
//! polling, no upgrade), on Switchboard's WebSocket client: it reads the
//! Engine.IO open packet, connects to `/` (`40`), answers pings, and counts
//! acks (`43<id>[...]`) and `bcast` events.

use std::fmt;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use switchboard_tokio::ws::{Message, WebSocket};

/// `pingInterval` of every server.
pub const PING_INTERVAL: Duration = Duration::from_secs(600);
/// `pingTimeout` of every server.
pub const PING_TIMEOUT: Duration = Duration::from_secs(20);

/// A Socket.IO server under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SioImpl {
    /// Switchboard on tokio.
    SwitchboardTokio,
    /// Switchboard on a smol executor.
    SwitchboardSmol,
    /// socketioxide under hyper on tokio.
    Socketioxide,
    /// Node `socket.io` 4.
    Node,
    /// Switchboard on OS threads (not in [`SioImpl::ALL`]: no target names
    /// it, and its idle case holds a thread per socket).
    SwitchboardThreads,
}

impl SioImpl {
    /// Every implementation, Switchboard's first.
    pub const ALL: [SioImpl; 4] = [
        SioImpl::SwitchboardTokio,
        SioImpl::SwitchboardSmol,
        SioImpl::Socketioxide,
        SioImpl::Node,
    ];

    /// The name used on the command line and in results.
    pub fn name(self) -> &'static str {
        match self {
            SioImpl::SwitchboardTokio => "switchboard-tokio",
            SioImpl::SwitchboardSmol => "switchboard-smol",
            SioImpl::Socketioxide => "socketioxide",
            SioImpl::Node => "node-socket.io",
            SioImpl::SwitchboardThreads => "switchboard-threads",
        }
    }
}

impl fmt::Display for SioImpl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SioImpl {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let short = match s {
            "tokio" => Some(SioImpl::SwitchboardTokio),
            "smol" => Some(SioImpl::SwitchboardSmol),
            "node" => Some(SioImpl::Node),
            "threads" => Some(SioImpl::SwitchboardThreads),
            _ => None,
        };
        short
            .or_else(|| {
                SioImpl::ALL
                    .into_iter()
                    .chain([SioImpl::SwitchboardThreads])
                    .find(|i| i.name() == s)
            })
            .ok_or_else(|| {
                format!(
                    "unknown Socket.IO implementation {s:?}: use tokio, smol, socketioxide, node or threads"
                )
            })
    }
}

fn tokio_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(std::thread::available_parallelism().map_or(1, |n| n.get()))
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Switchboard's server: the three handlers on `/`.
pub fn switchboard_io() -> switchboard_async::socketio::SocketIo {
    use switchboard_async::socketio::{SocketIo, SocketIoConfig};
    let config = SocketIoConfig {
        engine: switchboard_core::engineio::ServerConfig {
            ping_interval: PING_INTERVAL,
            ping_timeout: PING_TIMEOUT,
            ..Default::default()
        },
        ..Default::default()
    };
    let io = SocketIo::new(config);
    let rooms = io.clone();
    io.ns("/", move |socket| {
        socket.on("echo", |_, mut event| {
            if let Some(ack) = event.take_ack() {
                let _ = ack.send(&event.payload());
            }
        });
        socket.on("join", |socket, mut event| {
            let Ok(room) = event.arg::<String>(0) else {
                return;
            };
            let _ = socket.join(&room);
            if let Some(ack) = event.take_ack() {
                let _ = ack.send(&room);
            }
        });
        let io = rooms.clone();
        socket.on("broadcast-bench", move |_, event| {
            let (Ok(room), Ok(n)) = (event.arg::<String>(0), event.arg::<u32>(1)) else {
                return;
            };
            for _ in 0..n {
                let _ = io.to(room.as_str()).emit("bcast", "x");
            }
        });
    });
    io
}

/// Serves `imp` (a Rust one) at `/socket.io/` on `listener`, blocking
/// forever.
pub fn run(imp: SioImpl, listener: TcpListener) -> io::Result<()> {
    match imp {
        SioImpl::SwitchboardTokio => {
            let io = switchboard_io();
            tokio_runtime().block_on(async move {
                listener.set_nonblocking(true)?;
                let listener = tokio::net::TcpListener::from_std(listener)?;
                let routes =
                    switchboard_tokio::engineio::Routes::new().socketio("/socket.io/", &io);
                switchboard_tokio::engineio::serve(listener, routes).await;
                Ok(())
            })
        }
        SioImpl::SwitchboardSmol => {
            let io = switchboard_io();
            let executor = switchboard_conformance::runtime::smol_executor();
            smol::block_on(async move {
                let listener = async_net::TcpListener::try_from(listener)?;
                let runtime = switchboard_smol::Smol::with_spawner(move |task| {
                    executor.spawn(task).detach();
                });
                let routes = switchboard_smol::engineio::Routes::new().socketio("/socket.io/", &io);
                switchboard_smol::engineio::serve_on(runtime, listener, routes).await;
                Ok(())
            })
        }
        SioImpl::Socketioxide => tokio_runtime().block_on(async move {
            listener.set_nonblocking(true)?;
            let listener = tokio::net::TcpListener::from_std(listener)?;
            serve_socketioxide(listener).await
        }),
        SioImpl::SwitchboardThreads => {
            let io = switchboard_io();
            let routes = switchboard_threads::engineio::Routes::new().socketio("/socket.io/", &io);
            routes.start_timers()?;
            switchboard_threads::engineio::serve(listener, routes)
        }
        SioImpl::Node => Err(io::Error::other("node runs benches/scripts/sio-server.js")),
    }
}

/// socketioxide's server: the three handlers on `/` (async handlers, as
/// socketioxide 0.18 requires), served by hyper on `listener`.
async fn serve_socketioxide(listener: tokio::net::TcpListener) -> io::Result<()> {
    use socketioxide::extract::{AckSender, Data, SocketRef};
    let (service, io) = socketioxide::SocketIo::builder()
        .ping_interval(PING_INTERVAL)
        .ping_timeout(PING_TIMEOUT)
        .build_svc();
    let rooms = io.clone();
    io.ns("/", async move |socket: SocketRef| {
        socket.on(
            "echo",
            async |Data(args): Data<serde_json::Value>, ack: AckSender| {
                let _ = ack.send(&args);
            },
        );
        socket.on(
            "join",
            async |socket: SocketRef, Data(room): Data<String>, ack: AckSender| {
                socket.join(room.clone());
                let _ = ack.send(&room);
            },
        );
        let io = rooms.clone();
        socket.on(
            "broadcast-bench",
            async move |Data((room, n)): Data<(String, u32)>| {
                for _ in 0..n {
                    let _ = io.to(room.clone()).emit("bcast", "x").await;
                }
            },
        );
    });
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        let service = service.clone();
        tokio::spawn(async move {
            // Connection errors are how runs end.
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .with_upgrades()
                .await;
        });
    }
}

// ---------------------------------------------------------------------------
// The client.

/// Errors of the raw client.
fn protocol(what: impl fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

fn ws_error(error: impl fmt::Display) -> io::Error {
    io::Error::other(error.to_string())
}

/// A connected Socket.IO client socket (namespace `/`) over the WebSocket
/// transport.
pub struct Client {
    ws: WebSocket,
    next_id: u64,
}

/// What [`Client::next`] read.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming {
    /// An ack with this id.
    Ack(u64),
    /// A `bcast` event.
    Bcast,
    /// Anything else (e.g. other events).
    Other,
}

impl Client {
    /// Connects to `addr`'s `/socket.io/` and namespace `/`.
    pub async fn connect(addr: SocketAddr) -> io::Result<Client> {
        let url = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket");
        // No permessage-deflate offer: socketioxide and Node decline it,
        // Switchboard's server accepts it by default (about 320 KiB of
        // server memory per socket), so an offer would compare unlike
        // connections.
        let config = switchboard_tokio::ws::Config {
            deflate: None,
            ..Default::default()
        };
        let ws = switchboard_tokio::ws::connect_with_config(&url, config)
            .await
            .map_err(ws_error)?;
        debug_assert!(!ws.is_compressed());
        let mut client = Client { ws, next_id: 0 };
        let open = client.text().await?;
        if !open.starts_with("0{") {
            return Err(protocol(format!("expected an open packet, got {open:?}")));
        }
        client.send("40").await?;
        loop {
            let text = client.text().await?;
            if text.starts_with("40") {
                return Ok(client);
            }
            if text.starts_with("44") {
                return Err(protocol(format!("connect refused: {text}")));
            }
        }
    }

    /// Sends a text frame.
    pub async fn send(&mut self, text: &str) -> io::Result<()> {
        self.ws
            .send(Message::text(text.to_owned()))
            .await
            .map_err(ws_error)
    }

    /// The next text frame, answering pings (`2` -> `3`) on the way.
    async fn text(&mut self) -> io::Result<String> {
        loop {
            match self.ws.recv().await {
                Some(Ok(Message::Text(text))) => {
                    if text.as_str() == "2" {
                        self.send("3").await?;
                        continue;
                    }
                    return Ok(text.as_str().to_owned());
                }
                Some(Ok(Message::Close(_))) | None => {
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed"));
                }
                Some(Ok(_)) => {}
                Some(Err(error)) => return Err(ws_error(error)),
            }
        }
    }

    /// Reads and classifies the next packet.
    pub async fn next(&mut self) -> io::Result<Incoming> {
        loop {
            let incoming = match self.ws.recv().await {
                Some(Ok(Message::Text(text))) => {
                    let text = text.as_str();
                    if text == "2" {
                        self.send("3").await?;
                        continue;
                    }
                    classify(text)?
                }
                Some(Ok(Message::Close(_))) | None => {
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed"));
                }
                Some(Ok(_)) => continue,
                Some(Err(error)) => return Err(ws_error(error)),
            };
            return Ok(incoming);
        }
    }

    /// Emits `echo` ("x") asking for an ack; returns its id.
    pub async fn emit_echo(&mut self) -> io::Result<u64> {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&format!("42{id}[\"echo\",\"x\"]")).await?;
        Ok(id)
    }

    /// Joins `room` (with an ack) and waits for the ack.
    pub async fn join(&mut self, room: &str) -> io::Result<()> {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&format!("42{id}[\"join\",\"{room}\"]")).await?;
        loop {
            if self.next().await? == Incoming::Ack(id) {
                return Ok(());
            }
        }
    }

    /// Asks the server to emit `bcast` `n` times to `room`.
    pub async fn trigger_broadcast(&mut self, room: &str, n: u32) -> io::Result<()> {
        self.send(&format!("42[\"broadcast-bench\",\"{room}\",{n}]"))
            .await
    }
}

fn classify(text: &str) -> io::Result<Incoming> {
    if let Some(rest) = text.strip_prefix("43") {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let id = rest[..digits]
            .parse()
            .map_err(|_| protocol(format!("ack without id: {text:?}")))?;
        if !rest[digits..].starts_with('[') {
            return Err(protocol(format!("malformed ack: {text:?}")));
        }
        return Ok(Incoming::Ack(id));
    }
    if text.starts_with("42[\"bcast\"") {
        return Ok(Incoming::Bcast);
    }
    if text.starts_with('1') || text.starts_with("41") {
        return Err(protocol(format!("closed by the server: {text:?}")));
    }
    Ok(Incoming::Other)
}

/// Shared counters of a load run.
#[derive(Debug, Default)]
pub struct Counters {
    /// Acks (or deliveries) received so far.
    pub count: AtomicU64,
    /// Set to stop the connection tasks.
    pub stop: AtomicBool,
    /// First error any task met.
    pub errors: AtomicU64,
}

/// Drives `client` with `window` echo acks in flight until `counters.stop`,
/// counting acks. Acks may come back out of order (socketioxide runs each
/// handler as its own task), so each is only checked to answer an event
/// this client sent.
pub async fn ack_loop(
    mut client: Client,
    window: usize,
    counters: Arc<Counters>,
) -> io::Result<()> {
    let first = client.next_id;
    for _ in 0..window {
        client.emit_echo().await?;
    }
    while !counters.stop.load(Ordering::Relaxed) {
        match client.next().await? {
            Incoming::Ack(id) => {
                if id < first || id >= client.next_id {
                    return Err(protocol(format!("ack {id} answers no event")));
                }
                counters.count.fetch_add(1, Ordering::Relaxed);
                client.emit_echo().await?;
            }
            Incoming::Bcast | Incoming::Other => {}
        }
    }
    Ok(())
}

/// Counts `bcast` deliveries on `client` until `counters.stop`.
pub async fn bcast_loop(mut client: Client, counters: Arc<Counters>) -> io::Result<()> {
    while !counters.stop.load(Ordering::Relaxed) {
        if client.next().await? == Incoming::Bcast {
            counters.count.fetch_add(1, Ordering::Relaxed);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_packets() {
        assert_eq!(classify("4312[\"x\"]").unwrap(), Incoming::Ack(12));
        assert_eq!(classify("430[]").unwrap(), Incoming::Ack(0));
        assert_eq!(classify("42[\"bcast\",\"x\"]").unwrap(), Incoming::Bcast);
        assert_eq!(classify("42[\"other\"]").unwrap(), Incoming::Other);
        assert!(classify("43[\"x\"]").is_err());
        assert!(classify("41").is_err());
    }
}
