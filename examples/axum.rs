//! Switchboard inside an existing axum app: the app's REST routes and
//! Socket.IO (at `/socket.io/`) plus a WebSocket echo (at `/ws`) on one
//! listener, through [`SwitchboardLayer`]. A REST handler emits to a
//! Socket.IO room.
//!
//! ```sh
//! cargo run --example axum --features tower -- [127.0.0.1:3000]
//! curl http://127.0.0.1:3000/api/health
//! curl -d 'hello' http://127.0.0.1:3000/api/rooms/lobby/announce
//! ```
//!
//! Socket.IO clients `emit("join", "lobby", ack)` to enter a room, then
//! receive `announce` events posted to it.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use switchboard::tokio::socketio::{SocketIo, SocketIoConfig};
use switchboard::tokio::tower::SwitchboardLayer;
use switchboard::tokio::ws;

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

/// The app: its own routes, with Switchboard's mounted beside them.
pub fn app(io: SocketIo) -> Router {
    let switchboard = SwitchboardLayer::new()
        .socketio("/socket.io/", &io)
        .websocket("/ws", ws::echo);
    Router::new()
        .route("/api/health", get(|| async { "ok" }))
        .route("/api/rooms/{room}/announce", post(announce))
        .with_state(io)
        .layer(switchboard)
}

/// Emits the posted text to a room, from outside any Socket.IO handler;
/// answers how many clients it went to.
async fn announce(
    State(io): State<SocketIo>,
    Path(room): Path<String>,
    text: String,
) -> (StatusCode, String) {
    match io.to(room).emit("announce", &text) {
        Ok(count) => (StatusCode::OK, count.to_string()),
        Err(error) => (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()),
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let listen = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:3000".into());
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    println!("axum + Switchboard on http://{}/", listener.local_addr()?);
    axum::serve(listener, app(socket_io())).await
}
