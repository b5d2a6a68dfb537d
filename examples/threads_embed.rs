//! Switchboard beside a plain blocking HTTP app: the app's own accept loop
//! runs a thread per connection, looks at the first request line (without
//! consuming it), answers its own paths itself (`/api/...`, where a REST
//! route emits to a Socket.IO room), and hands Socket.IO connections (and
//! the WebSocket echo at `/ws`) whole to Switchboard (`serve_connection`)
//! on that thread.
//!
//! ```sh
//! cargo run --example threads_embed --features threads -- [127.0.0.1:3000]
//! curl -d 'hello' http://127.0.0.1:3000/api/rooms/lobby/announce
//! ```

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use switchboard::core::http::encode_response;
use switchboard::threads::engineio::{Routes, serve_connection};
use switchboard::threads::socketio::{SocketIo, SocketIoConfig};
use switchboard::threads::ws;

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

/// The app's accept loop, forever, a thread per connection.
pub fn run(listener: TcpListener, io: SocketIo) -> io::Result<()> {
    let routes = Routes::new()
        .socketio("/socket.io/", &io)
        .websocket(ws::echo);
    // Heartbeats and ack deadlines run on a timer thread.
    routes.start_timers()?;
    for stream in listener.incoming() {
        let Ok(stream) = stream else {
            // Out of file descriptors, say: wait a little, don't spin.
            std::thread::sleep(Duration::from_millis(50));
            continue;
        };
        let (routes, io) = (routes.clone(), io.clone());
        std::thread::spawn(move || {
            let result = match first_path(&stream) {
                Ok(path) if path.starts_with("/socket.io/") || path == "/ws" => {
                    serve_connection(stream, routes)
                }
                Ok(_) => api(stream, &io),
                Err(error) => Err(error),
            };
            if let Err(error) = result {
                eprintln!("connection ended: {error}");
            }
        });
    }
    Ok(())
}

/// How long a client has to send its first request line.
const FIRST_LINE_TIMEOUT: Duration = Duration::from_secs(5);

/// The path of the first request line, peeked: the bytes stay for
/// whoever serves the connection. A peek cannot tell a client that went
/// away after part of the line from a slow one, so the line must come
/// within [`FIRST_LINE_TIMEOUT`].
fn first_path(stream: &TcpStream) -> io::Result<String> {
    let deadline = Instant::now() + FIRST_LINE_TIMEOUT;
    let mut buf = [0u8; 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        stream.set_read_timeout(Some(left))?;
        let n = stream.peek(&mut buf)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        if let Some(end) = buf[..n].windows(2).position(|w| w == b"\r\n") {
            stream.set_read_timeout(None)?;
            let line = String::from_utf8_lossy(&buf[..end]);
            return Ok(line.split(' ').nth(1).unwrap_or("").to_owned());
        }
        if n == buf.len() {
            stream.set_read_timeout(None)?;
            return Ok(String::new());
        }
        // Only part of the line has arrived.
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The app's own blocking HTTP: `GET /api/health`, and
/// `POST /api/rooms/{room}/announce`, which emits the body to the room.
/// One request per connection.
fn api(mut stream: TcpStream, io: &SocketIo) -> io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let mut length = 0usize;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.trim().eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap_or(0).min(64 << 10);
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    let room = path
        .strip_prefix("/api/rooms/")
        .and_then(|rest| rest.strip_suffix("/announce"));
    let (status, answer) = match (method, path, room) {
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
    stream.write_all(&encode_response(status, &headers, answer.as_bytes()))?;
    stream.shutdown(Shutdown::Both)
}

fn main() -> io::Result<()> {
    let listen = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:3000".into());
    let listener = TcpListener::bind(&listen)?;
    println!(
        "threads + Switchboard on http://{}/",
        listener.local_addr()?
    );
    run(listener, socket_io())
}
