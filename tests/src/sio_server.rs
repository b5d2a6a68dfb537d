//! The Socket.IO server of `conformance-server` (contract sections 2 and
//! 3): namespaces `/`, `/custom` and `/admin` with the contract's handlers,
//! written once with the runtime-neutral API and served on every runtime.

use std::time::Duration;

use serde_json::json;
use switchboard_async::socketio::{ConnectError, Event, Socket, SocketIo, SocketIoConfig};
use switchboard_core::engineio::ServerConfig;
use switchboard_core::socketio::server::ServerConfig as CoreConfig;

/// How long the server waits for the client's answer to `question`.
const ASK_TIMEOUT: Duration = Duration::from_secs(10);

/// The contract's configuration: pingInterval 300 ms, pingTimeout 200 ms,
/// maxPayload 1,000,000, connectTimeout 1 s, Engine.IO v3 clients accepted,
/// CORS for any origin.
pub fn conformance_socketio_config() -> SocketIoConfig {
    SocketIoConfig {
        engine: ServerConfig {
            ping_interval: Duration::from_millis(300),
            ping_timeout: Duration::from_millis(200),
            max_payload: 1_000_000,
            allow_eio3: true,
            ..ServerConfig::default()
        },
        socketio: CoreConfig {
            connect_timeout: Duration::from_secs(1),
            ..CoreConfig::default()
        },
        ..SocketIoConfig::default()
    }
}

/// The contract's Socket.IO server.
pub fn conformance_socketio(config: SocketIoConfig) -> SocketIo {
    let io = SocketIo::new(config);
    io.ns("/", |socket| {
        greet(&socket);
        common_handlers(&socket);
        main_handlers(&socket);
    });
    io.ns("/custom", |socket| {
        greet(&socket);
        common_handlers(&socket);
    });
    io.ns_with(
        "/admin",
        |ns| {
            ns.middleware(|handshake| {
                if handshake.auth.get("token") == Some(&json!("secret")) {
                    Ok(())
                } else {
                    Err(ConnectError::new("not authorized"))
                }
            })
        },
        |socket| common_handlers(&socket),
    );
    io
}

/// Emits `auth` with the handshake's auth payload.
fn greet(socket: &Socket) {
    let auth = socket.handshake().auth.clone();
    if let Err(error) = socket.emit("auth", &auth) {
        tracing::debug!(%error, "auth emit failed");
    }
}

/// Answers the event's ack, if it asked for one, with `args`.
fn reply(event: &mut Event, args: &impl serde::Serialize) {
    if let Some(ack) = event.take_ack() {
        if let Err(error) = ack.send(args) {
            tracing::debug!(%error, "ack failed");
        }
    }
}

/// `echo` and `info`, in every namespace.
fn common_handlers(socket: &Socket) {
    socket.on("echo", |_, mut event| {
        let payload = event.payload();
        reply(&mut event, &payload);
    });
    socket.on("info", |socket, mut event| {
        let info = json!({
            "id": socket.id().to_string(),
            "nsp": socket.namespace(),
            "auth": socket.handshake().auth,
        });
        reply(&mut event, &info);
    });
}

/// The handlers of namespace `/`.
fn main_handlers(socket: &Socket) {
    socket.on("message", |socket, event| {
        let _ = socket.emit("message-back", &event.payload());
    });
    socket.on("message-with-ack", |_, mut event| {
        let payload = event.payload();
        reply(&mut event, &payload);
    });
    socket.on("join", |socket, mut event| {
        let Ok(room) = event.arg::<String>(0) else {
            return;
        };
        let _ = socket.join(&room);
        reply(&mut event, &(room,));
    });
    socket.on("leave", |socket, mut event| {
        let Ok(room) = event.arg::<String>(0) else {
            return;
        };
        let _ = socket.leave(&room);
        reply(&mut event, &(room,));
    });
    socket.on("room-size", |socket, mut event| {
        let Ok(room) = event.arg::<String>(0) else {
            return;
        };
        let size = socket.room_size(&room);
        reply(&mut event, &(size,));
    });
    socket.on("broadcast", |socket, mut event| {
        let Ok(room) = event.arg::<String>(0) else {
            return;
        };
        let _ = socket.to(room).emit("broadcast", &event.payload());
        reply(&mut event, &());
    });
    socket.on("ask", |socket, mut event| {
        let Some(ack) = event.take_ack() else {
            return;
        };
        let asked = socket.emit_with_ack_callback(
            "question",
            &event.payload(),
            ASK_TIMEOUT,
            move |answer| match answer {
                Ok(answer) => {
                    let _ = ack.send(&answer);
                }
                Err(error) => tracing::debug!(%error, "no answer to the question"),
            },
        );
        if let Err(error) = asked {
            tracing::debug!(%error, "question not asked");
        }
    });
    socket.on("disconnect-me", |socket, _| socket.disconnect());
    socket.on("drop-me", |socket, _| socket.close_connection());
}
