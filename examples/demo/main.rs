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
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::json;
use switchboard::Bytes;
use switchboard::core::engineio::HttpResponse;
use switchboard::core::http::Request;
use switchboard::socketio::{Socket, SocketIo, SocketIoConfig};

const PAGE: &str = include_str!("index.html");
const USAGE: &str =
    "usage: demo [--listen 127.0.0.1:3000] [--runtime tokio|smol|async-std|threads]";
const JOB_STEPS: u32 = 10;
const JOB_STEP_TIME: Duration = Duration::from_millis(400);
/// Longer chat lines are cut to this many characters.
const MAX_CHAT_CHARS: usize = 500;
/// Room names are 1 to this many characters (after trimming spaces).
const MAX_ROOM_CHARS: usize = 50;

/// The room a socket chats in.
#[derive(Clone)]
struct Room(String);

/// Set while the socket's job runs: one job at a time per socket.
#[derive(Clone, Default)]
struct JobRunning(Arc<AtomicBool>);

/// Clears [`JobRunning`] when the job's thread ends, however it ends.
struct JobDone(JobRunning);

impl Drop for JobDone {
    fn drop(&mut self) {
        self.0.0.store(false, Ordering::Release);
    }
}

/// `name` trimmed, if it makes a room name.
fn room_name(name: &str) -> Result<String, String> {
    let name = name.trim();
    if name.is_empty() {
        Err("a room needs a name".into())
    } else if name.chars().count() > MAX_ROOM_CHARS {
        Err(format!(
            "room names have at most {MAX_ROOM_CHARS} characters"
        ))
    } else {
        Ok(name.to_string())
    }
}

/// Moves `socket` to `room` (leaving the room it was in) and tells the room.
fn join_room(socket: &Socket, room: &str, verb: &str) -> Result<(), String> {
    socket
        .join(room)
        .map_err(|error| format!("cannot join {room:?}: {error}"))?;
    match socket.extension::<Room>() {
        Some(Room(previous)) if previous != room => {
            let _ = socket.leave(&previous);
        }
        _ => {}
    }
    socket.insert_extension(Room(room.to_string()));
    let text = format!("{} {verb} {room}", short_id(socket));
    let _ = socket
        .io()
        .to(room)
        .emit("chat", &json!({ "from": "server", "text": text }));
    Ok(())
}

/// The demo's Socket.IO handlers, the same on every runtime.
fn socket_io(runtime: &'static str) -> SocketIo {
    let io = SocketIo::new(SocketIoConfig::default());
    io.ns("/", move |socket| {
        socket.insert_extension(JobRunning::default());
        // A page that reconnects (after the server restarted, say) names the
        // room it was in, and is back in it before its first chat line.
        let room = socket.handshake().auth["room"]
            .as_str()
            .and_then(|room| room_name(room).ok())
            .filter(|room| join_room(&socket, room, "rejoined").is_ok());
        let _ = socket.emit("welcome", &json!({ "runtime": runtime, "room": room }));
        broadcast_client_count(&socket.io());
        socket.on_disconnect(|socket, _| broadcast_client_count(&socket.io()));

        // Answers `{ room }` once joined, or `{ error }`.
        socket.on("join", |socket, mut event| {
            let joined = event
                .arg::<String>(0)
                .map_err(|_| "a room name is a string".to_string())
                .and_then(|name| room_name(&name))
                .and_then(|room| join_room(&socket, &room, "joined").map(|()| room));
            if let Some(ack) = event.take_ack() {
                let _ = match joined {
                    Ok(room) => ack.send(&json!({ "room": room })),
                    Err(error) => ack.send(&json!({ "error": error })),
                };
            }
        });

        socket.on("chat", |socket, event| {
            let Ok(text) = event.arg::<String>(0) else {
                return;
            };
            let Some(Room(room)) = socket.extension::<Room>() else {
                let note = json!({ "from": "server", "text": "join a room first" });
                let _ = socket.emit("chat", &note);
                return;
            };
            let text = match text.char_indices().nth(MAX_CHAT_CHARS) {
                Some((end, _)) => format!("{}…", &text[..end]),
                None => text,
            };
            let message = json!({ "from": short_id(&socket), "text": text });
            let _ = socket.io().to(room).emit("chat", &message);
        });

        // The job runs on a thread of its own and emits from there: each
        // step reaches the page as it happens, whatever the runtime. Answers
        // whether it started (a socket runs one job at a time).
        socket.on("start-job", |socket, mut event| {
            let running = socket.extension::<JobRunning>().unwrap_or_default();
            let started = !running.0.swap(true, Ordering::AcqRel);
            if started {
                let done = JobDone(running);
                std::thread::spawn(move || {
                    let _done = done;
                    for step in 1..=JOB_STEPS {
                        std::thread::sleep(JOB_STEP_TIME);
                        let progress = json!({ "step": step, "total": JOB_STEPS });
                        if socket.emit("progress", &progress).is_err() {
                            return;
                        }
                    }
                });
            }
            if let Some(ack) = event.take_ack() {
                let _ = ack.send(&json!({ "started": started }));
            }
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
            ("-h" | "--help", _) => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            _ => {
                eprintln!("{USAGE}");
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
