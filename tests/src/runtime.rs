//! The runtimes under test and the servers run on them.

use std::fmt;
use std::net::{SocketAddr, TcpListener};
use std::str::FromStr;
use std::sync::Arc;

use std::time::Duration;

use switchboard_async::engineio::EngineIo;
use switchboard_async::socketio::SocketIo;
use switchboard_core::engineio::{HttpResponse, ServerConfig, ServerEvent};
use switchboard_core::http::ServerLimits;
use switchboard_core::ws::{Config, Message};

use crate::sio_server::{conformance_socketio, conformance_socketio_config};

/// A runtime Switchboard runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RuntimeKind {
    /// `switchboard-tokio` on a multi-threaded tokio runtime.
    Tokio,
    /// `switchboard-smol` on smol's executor.
    Smol,
    /// `switchboard-smol` driven by async-std's executor.
    AsyncStd,
    /// `switchboard-threads`.
    Threads,
}

impl RuntimeKind {
    /// Every runtime.
    pub const ALL: [RuntimeKind; 4] = [
        RuntimeKind::Tokio,
        RuntimeKind::Smol,
        RuntimeKind::AsyncStd,
        RuntimeKind::Threads,
    ];

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            RuntimeKind::Tokio => "tokio",
            RuntimeKind::Smol => "smol",
            RuntimeKind::AsyncStd => "async-std",
            RuntimeKind::Threads => "threads",
        }
    }
}

impl fmt::Display for RuntimeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for RuntimeKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        RuntimeKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| format!("unknown runtime {s:?}: use tokio, smol, async-std or threads"))
    }
}

/// The limits `conformance-server` raises for RFC 6455 suites: messages up
/// to 16 MiB in up to 1 Mi fragments.
pub fn conformance_config() -> Config {
    Config {
        max_frame_size: 16 << 20,
        max_message_size: 16 << 20,
        max_fragments: 1 << 20,
        ..Config::default()
    }
}

/// Runs the WebSocket echo server on `listener` with `runtime`, blocking the
/// calling thread forever.
pub fn run_ws_echo(runtime: RuntimeKind, listener: TcpListener, config: Config) {
    let config = Arc::new(config);
    match runtime {
        RuntimeKind::Tokio => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .expect("tokio runtime");
            rt.block_on(async move {
                listener.set_nonblocking(true).expect("nonblocking");
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                switchboard_async::ws::serve(
                    switchboard_tokio::Tokio,
                    listener,
                    config,
                    switchboard_async::ws::echo,
                )
                .await
            })
        }
        RuntimeKind::Smol => {
            let executor = smol_executor();
            smol::block_on(async move {
                let listener = async_net::TcpListener::try_from(listener).expect("listener");
                let runtime = switchboard_smol::Smol::with_spawner(move |task| {
                    executor.spawn(task).detach();
                });
                switchboard_async::ws::serve(runtime, listener, config, switchboard_async::ws::echo)
                    .await
            })
        }
        RuntimeKind::AsyncStd => async_std::task::block_on(async move {
            let listener = async_net::TcpListener::try_from(listener).expect("listener");
            let runtime = switchboard_smol::Smol::with_spawner(|task| {
                async_std::task::spawn(task);
            });
            switchboard_async::ws::serve(runtime, listener, config, switchboard_async::ws::echo)
                .await
        }),
        RuntimeKind::Threads => {
            let config = Arc::unwrap_or_clone(config);
            switchboard_threads::ws::serve(listener, config, switchboard_threads::ws::echo)
                .expect("threads server")
        }
    }
}

/// The Engine.IO endpoint of `conformance-server` (contract section 1):
/// pingInterval 300 ms, pingTimeout 200 ms, maxPayload 1,000,000, CORS for
/// any origin.
pub fn conformance_engineio_config() -> ServerConfig {
    ServerConfig {
        ping_interval: Duration::from_millis(300),
        ping_timeout: Duration::from_millis(200),
        max_payload: 1_000_000,
        ..ServerConfig::default()
    }
}

/// An Engine.IO endpoint that echoes every message, text or binary, as
/// sent, and sends nothing else of its own.
pub fn engineio_echo(config: ServerConfig) -> EngineIo {
    EngineIo::new(config, |engine: &EngineIo, event| {
        if let ServerEvent::Message { sid, data } = event {
            if let Err(error) = engine.send(&sid, data) {
                tracing::debug!(%sid, %error, "echo failed");
            }
        }
    })
}

/// Runs `conformance-server` on `listener` with `runtime`, blocking the
/// calling thread forever: Engine.IO at `/engine.io/`, Socket.IO at
/// `/socket.io/`, a WebSocket echo on every other path.
pub fn run_conformance_server(runtime: RuntimeKind, listener: TcpListener) {
    run_engineio_echo(runtime, listener, conformance_engineio_config())
}

/// Starts, on an ephemeral loopback port in a background thread, the
/// `conformance-server` routes with the Engine.IO echo at `/engine.io/`
/// configured by `config` (to test settings the contract's server does not
/// use, such as `allow_eio3`). Returns its address.
pub fn spawn_engineio_echo(runtime: RuntimeKind, config: ServerConfig) -> SocketAddr {
    spawn_on_free_port(format!("eio-echo-{runtime}"), move |listener| {
        run_engineio_echo(runtime, listener, config)
    })
}

/// Serves the Engine.IO echo configured by `config` at `/engine.io/`, the
/// contract's Socket.IO server at `/socket.io/`, and the WebSocket echo on
/// every other path, blocking forever.
pub fn run_engineio_echo(runtime: RuntimeKind, listener: TcpListener, config: ServerConfig) {
    let io = conformance_socketio(conformance_socketio_config());
    run_routes(runtime, listener, Served::endpoints(config, io))
}

/// Starts, on an ephemeral loopback port in a background thread, the
/// routes of [`run_engineio_echo`] with `io` at `/socket.io/` instead of
/// the contract's Socket.IO server. Returns its address.
pub fn spawn_socketio(runtime: RuntimeKind, io: SocketIo) -> SocketAddr {
    spawn_on_free_port(format!("socketio-{runtime}"), move |listener| {
        let config = conformance_engineio_config();
        run_routes(runtime, listener, Served::endpoints(config, io))
    })
}

/// Starts, on an ephemeral loopback port in a background thread, the
/// routes of [`run_engineio_echo`] with the contract's Engine.IO settings
/// and the HTTP server limits `limits`. Returns its address.
pub fn spawn_routes_with_limits(runtime: RuntimeKind, limits: ServerLimits) -> SocketAddr {
    spawn_on_free_port(format!("routes-{runtime}"), move |listener| {
        let io = conformance_socketio(conformance_socketio_config());
        let served = Served {
            limits,
            ..Served::endpoints(conformance_engineio_config(), io)
        };
        run_routes(runtime, listener, served)
    })
}

/// What a test server serves.
struct Served {
    /// The Engine.IO echo configured so at `/engine.io/`, and a Socket.IO
    /// server at `/socket.io/`.
    endpoints: Option<(ServerConfig, SocketIo)>,
    limits: ServerLimits,
    /// A WebSocket handler of its own at `/shout` and an HTTP handler of
    /// its own (see [`spawn_ws_routes`]).
    shout: bool,
}

impl Served {
    /// The Engine.IO echo configured by `config` and `io`, default limits.
    fn endpoints(config: ServerConfig, io: SocketIo) -> Self {
        Served {
            endpoints: Some((config, io)),
            limits: ServerLimits::default(),
            shout: false,
        }
    }
}

/// Serves `served` on `listener` with `runtime`, with the contract's
/// WebSocket settings and the WebSocket echo on every other path,
/// blocking forever.
fn run_routes(runtime: RuntimeKind, listener: TcpListener, served: Served) {
    let Served {
        endpoints,
        limits,
        shout: with_shout,
    } = served;
    let endpoints = endpoints.map(|(config, io)| (engineio_echo(config), io));
    let ws_config = conformance_config();
    match runtime {
        RuntimeKind::Tokio => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .expect("tokio runtime");
            rt.block_on(async move {
                listener.set_nonblocking(true).expect("nonblocking");
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                let routes = async_routes(ws_config, limits, endpoints, with_shout);
                switchboard_tokio::engineio::serve(listener, routes).await
            })
        }
        RuntimeKind::Smol | RuntimeKind::AsyncStd => {
            let serve = move |runtime: switchboard_smol::Smol| async move {
                let listener = async_net::TcpListener::try_from(listener).expect("listener");
                let routes = async_routes(ws_config, limits, endpoints, with_shout);
                switchboard_smol::engineio::serve_on(runtime, listener, routes).await
            };
            if runtime == RuntimeKind::Smol {
                let executor = smol_executor();
                smol::block_on(serve(switchboard_smol::Smol::with_spawner(move |task| {
                    executor.spawn(task).detach();
                })))
            } else {
                async_std::task::block_on(serve(switchboard_smol::Smol::with_spawner(|task| {
                    async_std::task::spawn(task);
                })))
            }
        }
        RuntimeKind::Threads => {
            let mut routes = switchboard_threads::engineio::Routes::new()
                .ws_config(ws_config)
                .limits(limits);
            if let Some((engine, io)) = endpoints {
                routes = routes
                    .engineio("/engine.io/", engine)
                    .socketio("/socket.io/", &io);
            }
            if with_shout {
                routes = routes
                    .websocket_at("/shout", shout_blocking)
                    .http(body_size);
            }
            let routes = routes.websocket(switchboard_threads::ws::echo);
            switchboard_threads::engineio::serve(listener, routes).expect("threads server")
        }
    }
}

/// [`run_routes`]'s routes on an async runtime (tokio's or smol's).
fn async_routes<S, R>(
    ws_config: Config,
    limits: ServerLimits,
    endpoints: Option<(EngineIo, SocketIo)>,
    with_shout: bool,
) -> switchboard_async::server::Routes<S, R>
where
    S: futures_util::AsyncRead + futures_util::AsyncWrite + Unpin + Send + 'static,
    R: switchboard_async::Runtime,
{
    let mut routes = switchboard_async::server::Routes::new()
        .ws_config(ws_config)
        .limits(limits);
    if let Some((engine, io)) = endpoints {
        routes = routes
            .engineio("/engine.io/", engine)
            .socketio("/socket.io/", &io);
    }
    if with_shout {
        routes = routes.websocket_at("/shout", shout).http(body_size);
    }
    routes.websocket(switchboard_async::ws::echo)
}

/// Starts, on an ephemeral loopback port in a background thread, routes
/// with a WebSocket handler of its own at `/shout` (answers each text
/// message in capitals), the WebSocket echo on every other path, and an
/// HTTP handler answering every other request with its body's size
/// (`"N bytes"`); no Engine.IO. Returns its address.
pub fn spawn_ws_routes(runtime: RuntimeKind) -> SocketAddr {
    spawn_ws_routes_with_limits(runtime, ServerLimits::default())
}

/// [`spawn_ws_routes`] with `limits`.
pub fn spawn_ws_routes_with_limits(runtime: RuntimeKind, limits: ServerLimits) -> SocketAddr {
    spawn_on_free_port(format!("ws-routes-{runtime}"), move |listener| {
        let served = Served {
            endpoints: None,
            limits,
            shout: true,
        };
        run_routes(runtime, listener, served)
    })
}

/// The HTTP handler of [`spawn_ws_routes`]: the size of the body it got.
fn body_size(_: &switchboard_core::http::Request, body: bytes::Bytes) -> HttpResponse {
    HttpResponse {
        status: 200,
        headers: vec![("Content-Type".into(), "text/plain".into())],
        body: format!("{} bytes", body.len()).into(),
    }
}

/// `/shout` of [`spawn_ws_routes`] on the threads runtime.
fn shout_blocking(mut ws: switchboard_threads::ws::WebSocket) {
    while let Some(Ok(message)) = ws.recv() {
        let Some(text) = message.as_text() else {
            continue;
        };
        if ws.send(Message::text(text.to_uppercase())).is_err() {
            break;
        }
    }
}

/// `/shout` of [`spawn_ws_routes`] on the async runtimes.
async fn shout<S, R>(mut ws: switchboard_async::ws::WebSocket<S, R>)
where
    S: futures_util::AsyncRead + futures_util::AsyncWrite + Unpin,
    R: switchboard_async::Runtime,
{
    while let Some(Ok(message)) = ws.recv().await {
        let Some(text) = message.as_text() else {
            continue;
        };
        if ws.send(Message::text(text.to_uppercase())).await.is_err() {
            break;
        }
    }
}

/// A smol executor with one thread per core, as a smol application would
/// set up for a server.
pub fn smol_executor() -> Arc<smol::Executor<'static>> {
    let executor = Arc::new(smol::Executor::new());
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    for i in 0..threads {
        let executor = executor.clone();
        std::thread::Builder::new()
            .name(format!("smol-{i}"))
            .spawn(move || smol::block_on(executor.run(std::future::pending::<()>())))
            .expect("spawn executor thread");
    }
    executor
}

/// Starts a WebSocket echo server on an ephemeral loopback port in a
/// background thread and returns its address. The server lives until the
/// process exits.
pub fn spawn_ws_echo(runtime: RuntimeKind, config: Config) -> SocketAddr {
    spawn_on_free_port(format!("echo-{runtime}"), move |listener| {
        run_ws_echo(runtime, listener, config)
    })
}

/// Binds an ephemeral loopback port and runs `serve` on it in a background
/// thread named `name`, for the rest of the process. Returns the address.
pub fn spawn_on_free_port(
    name: String,
    serve: impl FnOnce(TcpListener) + Send + 'static,
) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("local addr");
    std::thread::Builder::new()
        .name(name)
        .spawn(move || serve(listener))
        .expect("spawn server thread");
    addr
}
