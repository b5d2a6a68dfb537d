//! The Socket.IO server's per-ack path without the network: one thread
//! hands a read's worth of 16 `echo` events with ack ids to each of 32
//! WebSocket sessions in turn (`EngineIo::ws_messages`, as a connection
//! task does), `sio-bench`'s echo handler answers each with its arguments,
//! and the thread takes the acks off the sessions' queues. What this
//! measures is the user-space work of an ack (Engine.IO and Socket.IO
//! decoding, dispatch, the handler, encoding), which `sio-bench` cannot
//! tell apart from the kernel's; run it under
//! `valgrind --tool=callgrind` for a repeatable instruction profile.
//!
//! Run: `cargo bench -p switchboard-bench --bench sio_hub`

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use switchboard_async::engineio::{EngineIo, WsCommands};
use switchboard_bench::hub::{drain, open_ws_sessions};
use switchboard_bench::sio_bench::switchboard_io;
use switchboard_core::engineio::ConnId;
use switchboard_core::ws::Message;

const SESSIONS: usize = 32;
/// Events handed over per read, as under load (16 acks in flight).
const BURST: usize = 16;

/// Opens `count` WebSocket sessions, each connected to namespace `/`.
fn open_sockets(engine: &EngineIo, count: usize) -> Vec<(ConnId, WsCommands)> {
    let mut sockets = open_ws_sessions(engine, "/socket.io/", count);
    for (conn, commands) in &mut sockets {
        engine.ws_message(*conn, Message::text("40"));
        assert_eq!(drain(commands), 1, "the CONNECT answer");
    }
    sockets
}

fn echo_rounds(engine: &EngineIo, sockets: &mut [(ConnId, WsCommands)], rounds: u64) -> Duration {
    let events: Vec<Message> = (0..BURST)
        .map(|id| {
            Message::text(format!(
                "42{id}[\"echo\",{{\"n\":1,\"payload\":\"0123456789\"}}]"
            ))
        })
        .collect();
    let start = Instant::now();
    for _ in 0..rounds {
        for (conn, commands) in sockets.iter_mut() {
            engine.ws_messages(*conn, events.iter().cloned());
            assert_eq!(drain(commands), BURST, "every event acknowledged");
        }
    }
    start.elapsed()
}

fn hub(c: &mut Criterion) {
    let io = switchboard_io();
    let mut sockets = open_sockets(io.engine(), SESSIONS);
    let mut group = c.benchmark_group("socketio hub");
    group.measurement_time(Duration::from_secs(4));
    group.bench_function("echo acks (per round of 32 sockets x 16 events)", |b| {
        b.iter_custom(|rounds| echo_rounds(io.engine(), &mut sockets, rounds))
    });
    group.finish();
}

criterion_group!(benches, hub);
criterion_main!(benches);
