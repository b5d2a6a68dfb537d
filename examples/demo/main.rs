//! The Switchboard demo: a page on http://127.0.0.1:3000/ with a chat in
//! rooms, a background job that pushes its progress to the page that
//! started it, a raw WebSocket echo, and a live count of connected clients.
//!
//! ```sh
//! cargo run --release --example demo --all-features -- [--listen 127.0.0.1:3000] [--runtime tokio|smol|async-std|threads]
//! ```
//!
//! The same Socket.IO handlers run on every runtime; only the last few
//! lines (serving the routes) differ. The page uses the official Socket.IO
//! client, installed from npm on first run (`examples/demo/package-lock.json`)
//! and served by the demo itself.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Duration;

use serde_json::json;
use switchboard::Bytes;
use switchboard::core::engineio::HttpResponse;
use switchboard::core::http::Request;
use switchboard::socketio::{Socket, SocketIo, SocketIoConfig};

const PAGE: &str = include_str!("index.html");
const JOB_STEPS: u32 = 10;
const JOB_STEP_TIME: Duration = Duration::from_millis(400);

/// The room a socket chats in.
#[derive(Clone)]
struct Room(String);

/// The demo's Socket.IO handlers, the same on every runtime.
fn socket_io(runtime: &'static str) -> SocketIo {
    let io = SocketIo::new(SocketIoConfig::default());
    io.ns("/", move |socket| {
        let _ = socket.emit("welcome", &json!({ "runtime": runtime }));
        broadcast_client_count(&socket.io());
        socket.on_disconnect(|socket, _| broadcast_client_count(&socket.io()));

        socket.on("join", |socket, mut event| {
            let Ok(room) = event.arg::<String>(0) else {
                return;
            };
            if let Some(Room(previous)) = socket.extension::<Room>() {
                let _ = socket.leave(&previous);
            }
            let _ = socket.join(&room);
            socket.insert_extension(Room(room.clone()));
            let _ = socket.io().to(room.clone()).emit(
                "chat",
                &json!({ "from": "server", "text": format!("{} joined {room}", short_id(&socket)) }),
            );
            if let Some(ack) = event.take_ack() {
                let _ = ack.send(&room);
            }
        });

        socket.on("chat", |socket, event| {
            let (Ok(text), Some(Room(room))) = (event.arg::<String>(0), socket.extension::<Room>())
            else {
                return;
            };
            let message = json!({ "from": short_id(&socket), "text": text });
            let _ = socket.io().to(room).emit("chat", &message);
        });

        // The job runs on a thread of its own and emits from there: each
        // step reaches the page as it happens, whatever the runtime.
        socket.on("start-job", |socket, _| {
            std::thread::spawn(move || {
                for step in 1..=JOB_STEPS {
                    std::thread::sleep(JOB_STEP_TIME);
                    let progress = json!({ "step": step, "total": JOB_STEPS });
                    if socket.emit("progress", &progress).is_err() {
                        return;
                    }
                }
            });
        });
    });
    io
}

fn short_id(socket: &Socket) -> String {
    socket.id().chars().take(6).collect()
}

fn broadcast_client_count(io: &SocketIo) {
    let _ = io.emit("clients", &io.socket_count());
}

/// The page and the Socket.IO client script; 404 for anything else.
fn pages(client_js: Bytes) -> impl Fn(&Request, Bytes) -> HttpResponse + Send + Sync + 'static {
    move |request, _body| {
        let (status, content_type, body) = match request.path() {
            "/" | "/index.html" => (
                200,
                "text/html; charset=utf-8",
                Bytes::from_static(PAGE.as_bytes()),
            ),
            "/vendor/socket.io.min.js" => (200, "text/javascript", client_js.clone()),
            _ => (404, "text/plain", Bytes::from_static(b"not found")),
        };
        HttpResponse {
            status,
            headers: vec![("Content-Type".into(), content_type.into())],
            body,
        }
    }
}

/// The official Socket.IO browser client, installed with `npm ci` into
/// `examples/demo/node_modules` on first run.
fn client_script() -> Result<Bytes, String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join("demo");
    let script: PathBuf = dir.join("node_modules/socket.io-client/dist/socket.io.min.js");
    if !script.exists() {
        eprintln!(
            "installing the Socket.IO browser client (npm ci in {})",
            dir.display()
        );
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--ignore-scripts"])
            .current_dir(&dir)
            .status()
            .map_err(|e| format!("cannot run npm (is Node.js installed?): {e}"))?;
        if !status.success() {
            return Err(format!("npm ci failed in {}", dir.display()));
        }
    }
    std::fs::read(&script)
        .map(Bytes::from)
        .map_err(|e| format!("cannot read {}: {e}", script.display()))
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let mut listen = "127.0.0.1:3000".to_string();
    let mut runtime = "tokio".to_string();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--listen", Some(value)) => listen = value,
            ("--runtime", Some(value)) => runtime = value,
            _ => {
                eprintln!(
                    "usage: demo [--listen 127.0.0.1:3000] [--runtime tokio|smol|async-std|threads]"
                );
                return ExitCode::from(2);
            }
        }
    }
    let runtime: &'static str = match runtime.as_str() {
        "tokio" => "tokio",
        "smol" => "smol",
        "async-std" => "async-std",
        "threads" => "threads",
        other => {
            eprintln!("unknown runtime {other:?}: use tokio, smol, async-std or threads");
            return ExitCode::from(2);
        }
    };
    let client_js = match client_script() {
        Ok(script) => script,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::FAILURE;
        }
    };
    let listener = match TcpListener::bind(&listen) {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("cannot listen on {listen}: {error}");
            return ExitCode::FAILURE;
        }
    };
    let addr = listener.local_addr().expect("local address");
    let io = socket_io(runtime);
    println!("Switchboard demo on http://{addr}/ ({runtime})");
    serve(runtime, listener, io, pages(client_js));
    ExitCode::SUCCESS
}

/// Serves the page, Socket.IO at `/socket.io/` and the WebSocket echo on
/// `runtime`, forever.
fn serve(
    runtime: &str,
    listener: TcpListener,
    io: SocketIo,
    pages: impl Fn(&Request, Bytes) -> HttpResponse + Send + Sync + 'static,
) {
    match runtime {
        "tokio" => {
            use switchboard::tokio::engineio::{Routes, serve};
            let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
            rt.block_on(async move {
                listener
                    .set_nonblocking(true)
                    .expect("non-blocking listener");
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                let routes = Routes::new()
                    .socketio("/socket.io/", &io)
                    .websocket(switchboard::tokio::ws::echo)
                    .http(pages);
                serve(listener, routes).await
            })
        }
        "smol" | "async-std" => {
            use switchboard::smol::Smol;
            use switchboard::smol::engineio::{Routes, serve_on};
            let spawner = if runtime == "smol" {
                Smol::new()
            } else {
                Smol::with_spawner(|task| {
                    async_std::task::spawn(task);
                })
            };
            let serving = async move {
                let listener = async_net::TcpListener::try_from(listener).expect("listener");
                let routes = Routes::new()
                    .socketio("/socket.io/", &io)
                    .websocket(switchboard::smol::ws::echo)
                    .http(pages);
                serve_on(spawner, listener, routes).await
            };
            if runtime == "smol" {
                smol::block_on(serving)
            } else {
                async_std::task::block_on(serving)
            }
        }
        _ => {
            use switchboard::threads::engineio::{Routes, serve};
            let routes = Routes::new()
                .socketio("/socket.io/", &io)
                .websocket(switchboard::threads::ws::echo)
                .http(pages);
            if let Err(error) = serve(listener, routes) {
                eprintln!("server failed: {error}");
            }
        }
    }
}
