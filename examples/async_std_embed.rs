//! Switchboard inside an async-std app with its own accept loop: the app
//! looks at each connection's first request line (without consuming it),
//! answers its own paths (`/api/...`, where a REST route emits to a
//! Socket.IO room), and hands every other connection whole to Switchboard
//! (`serve_connection`): Socket.IO at `/socket.io/`, a WebSocket echo on
//! any other upgrade. Switchboard's tasks run on async-std's executor.
//!
//! ```sh
//! cargo run --example async_std_embed --features smol -- [127.0.0.1:3000]
//! curl -d 'hello' http://127.0.0.1:3000/api/rooms/lobby/announce
//! ```

use std::io;
use std::time::Duration;

use async_std::net::{TcpListener, TcpStream};
use futures_util::{AsyncReadExt, AsyncWriteExt};
use switchboard::core::http::encode_response;
use switchboard::smol::Smol;
use switchboard::smol::engineio::{Routes, serve_connection};
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

/// The app's accept loop, forever, one async-std task per connection.
pub async fn run(listener: TcpListener, io: SocketIo) {
    let runtime = Smol::with_spawner(|task| {
        async_std::task::spawn(task);
    });
    let routes: Routes<TcpStream> = Routes::new()
        .socketio("/socket.io/", &io)
        .websocket(ws::echo);
    loop {
        let Ok((stream, _peer)) = listener.accept().await else {
            // Out of file descriptors, say: wait a little, don't spin.
            async_std::task::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (runtime, routes, io) = (runtime.clone(), routes.clone(), io.clone());
        async_std::task::spawn(async move {
            let result = match first_path(&stream).await {
                Ok(path) if path.starts_with("/api/") => api(stream, &io).await,
                Ok(_) => serve_connection(runtime, stream, routes).await,
                Err(error) => Err(error),
            };
            if let Err(error) = result {
                eprintln!("connection ended: {error}");
            }
        });
    }
}

/// How long a client has to send its first request line.
const FIRST_LINE_TIMEOUT: Duration = Duration::from_secs(5);

/// The path of the first request line, peeked: the bytes stay for
/// whoever serves the connection. A peek cannot tell a client that went
/// away after part of the line from a slow one, so the line must come
/// within [`FIRST_LINE_TIMEOUT`].
async fn first_path(stream: &TcpStream) -> io::Result<String> {
    async_std::future::timeout(FIRST_LINE_TIMEOUT, peek_path(stream))
        .await
        .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))?
}

async fn peek_path(stream: &TcpStream) -> io::Result<String> {
    let mut buf = [0u8; 1024];
    loop {
        let n = stream.peek(&mut buf).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        if let Some(end) = buf[..n].windows(2).position(|w| w == b"\r\n") {
            let line = String::from_utf8_lossy(&buf[..end]);
            return Ok(line.split(' ').nth(1).unwrap_or("").to_owned());
        }
        if n == buf.len() {
            return Ok(String::new());
        }
        // Only part of the line has arrived.
        async_std::task::sleep(Duration::from_millis(1)).await;
    }
}

/// The app's own routes: `GET /api/health`, and
/// `POST /api/rooms/{room}/announce`, which emits the body to the room.
async fn api(mut stream: TcpStream, io: &SocketIo) -> io::Result<()> {
    let (request, buffered) = ws::read_request(&mut stream, &Config::default())
        .await
        .map_err(io::Error::other)?;
    let length = request
        .headers
        .get("content-length")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0)
        .min(64 << 10);
    let mut body = buffered[..buffered.len().min(length)].to_vec();
    let start = body.len();
    body.resize(length, 0);
    stream.read_exact(&mut body[start..]).await?;
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

fn main() -> io::Result<()> {
    let listen = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:3000".into());
    async_std::task::block_on(async {
        let listener = TcpListener::bind(&listen).await?;
        println!(
            "async-std + Switchboard on http://{}/",
            listener.local_addr()?
        );
        run(listener, socket_io()).await;
        Ok(())
    })
}
