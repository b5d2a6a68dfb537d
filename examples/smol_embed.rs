//! Switchboard inside a smol app that accepts connections and reads
//! requests itself: the app answers its own paths (`/api/...`, where a
//! REST route emits to a Socket.IO room), and hands every other
//! connection, with the request it already read, to Switchboard
//! (`serve_request`): Socket.IO at `/socket.io/`, a WebSocket echo on any
//! other upgrade. A client has [`REQUEST_TIMEOUT`] to send that first
//! request; Switchboard's own timeouts apply after it.
//!
//! ```sh
//! cargo run --example smol_embed --features smol -- [127.0.0.1:3000]
//! curl -d 'hello' http://127.0.0.1:3000/api/rooms/lobby/announce
//! ```

use std::future::Future;
use std::io;
use std::time::{Duration, Instant};

use async_net::{TcpListener, TcpStream};
use futures_util::{AsyncReadExt, AsyncWriteExt};
use switchboard::Bytes;
use switchboard::core::http::{Request, encode_response};
use switchboard::smol::Smol;
use switchboard::smol::engineio::{self, Routes};
use switchboard::smol::socketio::{SocketIo, SocketIoConfig};
use switchboard::smol::ws::{self, Config};

/// The Socket.IO server: `join` a room (acked with its name), `echo` back.
pub fn socket_io() -> SocketIo {
    let io = SocketIo::new(SocketIoConfig::default());
    io.ns("/", |socket| {
        socket.on("join", |socket, mut event| {
            let Ok(room) = event.arg::<String>(0) else {
                return;
            };
            let _ = socket.join(&room);
            if let Some(ack) = event.take_ack() {
                let _ = ack.send(&room);
            }
        });
        socket.on("echo", |socket, event| {
            if let Ok(value) = event.arg::<serde_json::Value>(0) {
                let _ = socket.emit("echo", &value);
            }
        });
    });
    io
}

/// How long a client has to send its first request (its head, and the
/// body of an `/api/` request).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The app's accept loop, forever, one smol task per connection.
pub async fn run(listener: TcpListener, io: SocketIo) {
    let runtime = Smol::new();
    let routes: Routes = Routes::new()
        .socketio("/socket.io/", &io)
        .websocket(ws::echo);
    // Heartbeats and ack deadlines run on smol's executor.
    routes.start_timers(&runtime);
    loop {
        let Ok((stream, _peer)) = listener.accept().await else {
            // Out of file descriptors, say: wait a little, don't spin.
            smol::Timer::after(std::time::Duration::from_millis(50)).await;
            continue;
        };
        let (runtime, routes, io) = (runtime.clone(), routes.clone(), io.clone());
        smol::spawn(async move {
            if let Err(error) = connection(runtime, stream, routes, io).await {
                eprintln!("connection ended: {error}");
            }
        })
        .detach();
    }
}

async fn connection(
    runtime: Smol,
    mut stream: TcpStream,
    routes: Routes,
    io: SocketIo,
) -> io::Result<()> {
    // The app reads the first request head itself (any parser will do; it
    // only has to give Switchboard the head and the bytes read after it),
    // within a deadline: Switchboard's own timeouts start once it has the
    // connection.
    let deadline = Instant::now() + REQUEST_TIMEOUT;
    let head = async {
        ws::read_request(&mut stream, &Config::default())
            .await
            .map_err(io::Error::other)
    };
    let (request, buffered) = before(deadline, head).await?;
    if request.path().starts_with("/api/") {
        return api(stream, &request, buffered, &io, deadline).await;
    }
    engineio::serve_request(runtime, stream, &request, &buffered, routes).await
}

/// The app's own routes: `GET /api/health`, and
/// `POST /api/rooms/{room}/announce`, which emits the body to the room.
async fn api(
    mut stream: TcpStream,
    request: &Request,
    buffered: Bytes,
    io: &SocketIo,
    deadline: Instant,
) -> io::Result<()> {
    let length = request
        .headers
        .get("content-length")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0)
        .min(64 << 10);
    let mut body = buffered[..buffered.len().min(length)].to_vec();
    let start = body.len();
    body.resize(length, 0);
    before(deadline, stream.read_exact(&mut body[start..])).await?;
    let room = request
        .path()
        .strip_prefix("/api/rooms/")
        .and_then(|rest| rest.strip_suffix("/announce"));
    let (status, answer) = match (request.method.as_str(), request.path(), room) {
        ("GET", "/api/health", _) => (200, "ok".to_string()),
        ("POST", _, Some(room)) => {
            let text = String::from_utf8_lossy(&body).into_owned();
            match io.to(room).emit("announce", &text) {
                Ok(count) => (200, count.to_string()),
                Err(error) => (500, error.to_string()),
            }
        }
        _ => (404, "not found".to_string()),
    };
    let headers = [("Content-Type", "text/plain"), ("Connection", "close")];
    stream
        .write_all(&encode_response(status, &headers, answer.as_bytes()))
        .await?;
    stream.close().await
}

/// `future`'s result, or a `TimedOut` error once `deadline` has passed.
async fn before<T>(
    deadline: Instant,
    future: impl Future<Output = io::Result<T>>,
) -> io::Result<T> {
    let timeout = async {
        smol::Timer::at(deadline).await;
        Err(io::ErrorKind::TimedOut.into())
    };
    smol::future::or(future, timeout).await
}

fn main() -> io::Result<()> {
    let listen = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:3000".into());
    smol::block_on(async {
        let listener = TcpListener::bind(&listen).await?;
        println!("smol + Switchboard on http://{}/", listener.local_addr()?);
        run(listener, socket_io()).await;
        Ok(())
    })
}
