//! WebSocket sessions opened on an Engine.IO endpoint in-process, without
//! a network, for the hub benches (`eio_hub`, `sio_hub`).

use bytes::Bytes;
use switchboard_async::engineio::{EngineIo, Routed, WsCommand, WsCommands};
use switchboard_core::engineio::ConnId;
use switchboard_core::http::{Limits, Request};

/// Opens `count` WebSocket sessions on `engine` (mounted at `path`, such
/// as `/engine.io/`), their open packets taken off their queues.
pub fn open_ws_sessions(engine: &EngineIo, path: &str, count: usize) -> Vec<(ConnId, WsCommands)> {
    let head = format!(
        "GET {path}?EIO=4&transport=websocket HTTP/1.1\r\n\
         Upgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
    );
    let (request, _) = Request::parse(head.as_bytes(), &Limits::default())
        .expect("valid head")
        .expect("complete head");
    (0..count)
        .map(|_| match engine.handle_request(&request, Bytes::new()) {
            Routed::WebSocket(conn, mut commands) => {
                assert_eq!(drain(&mut commands), 1, "the open packet");
                (conn, commands)
            }
            _ => panic!("a WebSocket handshake is accepted"),
        })
        .collect()
}

/// Takes the queued messages off a session's queue; returns how many.
pub fn drain(commands: &mut WsCommands) -> usize {
    let mut taken = 0;
    while let Ok(WsCommand::Send(_)) = commands.try_recv() {
        taken += 1;
    }
    taken
}
